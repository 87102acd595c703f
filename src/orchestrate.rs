//! The per-workload pipeline for every kind, and the group.
//!
//! A run names one or more workloads of any kind (a single Deployment is
//! the group of one). Each workload is a [`Unit`] that goes through the
//! same phases — permissions, the deploy lock and interrupted-run recovery
//! (locks taken in kind/name order, so two group runs never deadlock),
//! `prepare` (read, plan, pre-flight; nothing changes), `apply` (the one
//! patch carrying the in-progress marker, or the new RC), `follow` (until
//! success, a fail-fast cause, the deadline or a cancel), `roll_back`, and
//! `commit` (the ReplicationController's last step: deleting the old RC,
//! deferred until the whole group succeeded).
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
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{CapacityCheck, ImageChange, Settings};
use crate::diagnose::{self, Cause, Finding, Signal};
use crate::exit::ExitCode;
use crate::guards::Guards;
use crate::preflight::capacity;
use crate::report::{self, Conclusion, Report, WorkloadReport};
use crate::stability::{Check, Stability};
use crate::track::{self, Ended, Judged, Tracker, Watch, WatchSnapshot};
use crate::workload::deployment::{self as dep, Expectations, Progress};
use crate::workload::replicationcontroller::{self as rc, Interrupted, RcPlan, Step};
use crate::workload::{self, Kind, Limits, WorkloadRef, daemonset as ds, statefulset as sts};
use crate::{Stop, cluster_error, stop};
use crate::{cancel, lock, recovery};

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

/// Every permission a run needs in `ns`: each workload's (its kind's list,
/// including list/watch on the workload itself), and the deploy lock's
/// Lease verbs unless the lock is off.
fn needed_permissions(
    workloads: &[WorkloadRef],
    lock: bool,
) -> Vec<(
    Option<&WorkloadRef>,
    &'static str,
    &'static str,
    &'static str,
)> {
    let mut needed = Vec::new();
    for w in workloads {
        for (verb, group, resource) in w.kind.needed_permissions() {
            needed.push((Some(w), *verb, *group, *resource));
        }
    }
    if lock {
        for verb in lock::LEASE_VERBS {
            needed.push((None, *verb, "coordination.k8s.io", "leases"));
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
async fn check_permissions(
    client: &Client,
    ns: &str,
    workloads: &[WorkloadRef],
    lock: bool,
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
    let needed = needed_permissions(workloads, lock);
    let named = |w: Option<&WorkloadRef>, verb: &str, resource: &str| {
        w.filter(|w| resource == w.kind.resource() && matches!(verb, "get" | "patch"))
            .map(|w| w.name.clone())
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
            Some(w) if !single => format!(" (for {w})"),
            None => " (the deploy lock; or set lock=false)".to_string(),
            _ => String::new(),
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

/// `matchLabels` and `matchExpressions` of a Deployment as a label selector string.
fn deployment_selector(d: &Deployment) -> String {
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

fn pod_spec(raw: &Value, pointer: &str) -> PodSpec {
    raw.pointer(pointer)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn replicas_of(raw: &Value) -> i32 {
    raw.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0) as i32
}

/// A ReplicationController rolling update's (surge, unavailable): the
/// inputs, at least one of them non-zero (kubectl's default: surge 1).
fn rc_surge(s: &Settings, desired: i32) -> (i32, i32) {
    let mut surge = s.max_surge.resolve(desired, true);
    let unavailable = s.max_unavailable.resolve(desired, false).min(desired);
    if surge == 0 && unavailable == 0 {
        surge = 1;
    }
    (surge, unavailable)
}

/// What the pre-flight checks of one workload look at.
struct Checks<'a> {
    spec: &'a PodSpec,
    selector: &'a LabelSelector,
    /// None: no capacity check (a DaemonSet's pods are per node).
    strategy: Option<capacity::Strategy>,
}

/// The pre-flight checks of issue #9 (the image exists, the new pods fit)
/// for any kind; `Some` is the pinned image (pin-digest). A failure is
/// recorded in `rep` and stops the run before anything changed.
async fn preflight(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    rep: &mut WorkloadReport,
    checks: &Checks<'_>,
    container: &str,
    new_image: &str,
    out: &mut (dyn Write + Send),
) -> Result<Option<String>, Stop> {
    let mut pf = ctx.settings.preflight.clone();
    let strategy = checks.strategy.unwrap_or(capacity::Strategy {
        replicas: 0,
        max_surge: 0,
        max_unavailable: 0,
    });
    if checks.strategy.is_none() {
        pf.capacity_check = CapacityCheck::Off;
    }
    match crate::preflight::run_for(
        &ctx.client,
        &ctx.ns,
        checks.spec,
        checks.selector,
        strategy,
        container,
        new_image,
        &pf,
        out,
    )
    .await
    {
        Ok(passed) => Ok(passed.pinned_image),
        Err(finding) => {
            let whose = if ctx.single {
                String::new()
            } else {
                format!(" of {w}")
            };
            let message = format!(
                "blocked by pre-flight{whose}: {}; nothing changed",
                finding.summary
            );
            rep.cause = Some(finding.summary.clone());
            rep.findings = vec![*finding];
            Err(Stop {
                preflight: true,
                ..stop(ExitCode::BadInput, message)
            })
        }
    }
}

/// Plan one patch with `planner` (change, container, version), run the
/// pre-flight checks, and plan again for a pinned digest (pin-digest: the
/// same plan for `repo:tag@sha256:…`; the version still comes from the tag).
async fn plan_checked(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    rep: &mut WorkloadReport,
    checks: &Checks<'_>,
    planner: impl Fn(&ImageChange, Option<&str>, Option<&str>) -> Result<dep::Plan, Stop>,
    out: &mut (dyn Write + Send),
) -> Result<dep::Plan, Stop> {
    let s = ctx.settings;
    let fill = |rep: &mut WorkloadReport, plan: &dep::Plan| {
        rep.container = Some(plan.container.clone());
        rep.previous_image = Some(plan.old_image.clone());
        rep.image = Some(plan.new_image.clone());
        rep.version = Some(plan.version.clone());
        rep.previous_template = Some(plan.previous_template.clone());
        rep.patch = Some(plan.patch.clone());
    };
    let plan = planner(&s.change, s.container.as_deref(), s.version.as_deref())?;
    fill(rep, &plan);
    match preflight(ctx, w, rep, checks, &plan.container, &plan.new_image, out).await? {
        None => Ok(plan),
        Some(pinned) => {
            let plan = planner(
                &ImageChange::Image(pinned),
                Some(&plan.container),
                Some(&plan.version),
            )?;
            fill(rep, &plan);
            Ok(plan)
        }
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
        // Caught at its first exit (no restart yet), the exited instance is
        // still the current one; after a restart it is the previous one. The
        // kubelet may restart it meanwhile: then the previous one has them.
        let order: &[bool] = if s.restarts > 0 {
            &[true]
        } else {
            &[false, true]
        };
        for &previous in order {
            let params = LogParams {
                container: Some(c.clone()),
                previous,
                // A longer tail than a screen: the reports show the last lines
                // and fold the rest.
                tail_lines: Some(40),
                ..Default::default()
            };
            match pods.logs(&s.pod, &params).await {
                Ok(text) if !text.trim().is_empty() => {
                    logs.insert(
                        (s.pod.clone(), c.clone()),
                        text.lines().map(str::to_string).collect(),
                    );
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("could not read the logs of {}/{c}: {e}", s.pod)
                }
            }
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
    /// A run of one workload: its messages and report are the classic ones.
    single: bool,
}

/// A Deployment.
struct DepUnit {
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
    /// When the plan was made (the in-progress marker's start).
    planned_at: String,
    /// The in-progress marker our patch set (Deployment, StatefulSet, DaemonSet).
    marker: Option<recovery::Marker>,
    /// The workload as read: its uid and generation (what the marker binds to).
    read_as: (String, i64),
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
    /// Read, plan and pre-flight; nothing changes. The report `rep` is
    /// filled as we go (a failure keeps what was planned).
    async fn prepare(
        ctx: &Ctx<'_>,
        w: &WorkloadRef,
        rep: &mut WorkloadReport,
        out: &mut (dyn Write + Send),
    ) -> Result<Unit, Stop> {
        let s = ctx.settings;
        let now = crate::now_rfc3339();
        let mut read_as = (String::new(), 0);
        let uid_generation = |raw: &Value| {
            (
                raw.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                raw.pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            )
        };
        let state = match w.kind {
            Kind::Deployment => {
                let raw = match get_obj(&ctx.client, w.kind, &ctx.ns, &w.name).await {
                    Ok(v) => v,
                    Err(e) if is_status(&e, 404) => return Err(not_found(w, &ctx.ns)),
                    Err(e) => return Err(cluster_error(&e, &format!("reading {w}"))),
                };
                read_as = uid_generation(&raw);
                let typed: Deployment = serde_json::from_value(raw.clone()).map_err(|e| {
                    stop(
                        ExitCode::ClusterConfig,
                        format!("{w} could not be read: {e}"),
                    )
                })?;
                let selector = deployment_selector(&typed);
                let replica_sets = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ctx.ns)
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| cluster_error(&e, "listing replica sets"))?
                    .items
                    .into_iter()
                    .map(Arc::new)
                    .collect::<Vec<_>>();
                let planner =
                    |change: &ImageChange, container: Option<&str>, version: Option<&str>| {
                        dep::plan(
                            &raw,
                            &replica_sets,
                            container,
                            change,
                            version,
                            &s.version_label,
                            &s.run_origin,
                            &now,
                        )
                        .map_err(|e| stop(ExitCode::BadInput, e.0))
                    };
                let (spec, label_selector, strategy) = crate::preflight::inputs(&typed);
                let checks = Checks {
                    spec: &spec,
                    selector: &label_selector,
                    strategy: Some(strategy),
                };
                let plan = plan_checked(ctx, w, rep, &checks, planner, out).await?;
                State::Deployment(Box::new(DepUnit {
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
                read_as = uid_generation(&raw);
                let is_sts = w.kind == Kind::StatefulSet;
                let planner =
                    |change: &ImageChange, container: Option<&str>, version: Option<&str>| {
                        let plan = if is_sts { sts::plan } else { ds::plan };
                        plan(
                            &raw,
                            container,
                            change,
                            version,
                            &s.version_label,
                            &s.run_origin,
                            &now,
                        )
                        .map_err(|e| stop(ExitCode::BadInput, e.0))
                    };
                let spec = pod_spec(&raw, "/spec/template/spec");
                let selector: LabelSelector = raw
                    .pointer("/spec/selector")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                // A StatefulSet replaces one pod at a time (surge 0,
                // unavailable 1); a DaemonSet's pods are per node: no capacity check.
                let strategy = is_sts.then(|| capacity::Strategy {
                    replicas: replicas_of(&raw),
                    max_surge: 0,
                    max_unavailable: 1,
                });
                let checks = Checks {
                    spec: &spec,
                    selector: &selector,
                    strategy,
                };
                let plan = plan_checked(ctx, w, rep, &checks, planner, out).await?;
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
                let planner =
                    |change: &ImageChange, container: Option<&str>, version: Option<&str>| {
                        rc::plan(
                            &old,
                            container,
                            change,
                            version,
                            &s.version_label,
                            &s.run_origin,
                            &now,
                        )
                        .map_err(|e| stop(ExitCode::BadInput, e.0))
                    };
                let mut plan = planner(&s.change, s.container.as_deref(), s.version.as_deref())?;
                rep.container = Some(plan.container.clone());
                rep.previous_image = Some(plan.old_image.clone());
                rep.image = Some(plan.new_image.clone());
                rep.version = Some(plan.version.clone());
                rep.previous_template = Some(plan.previous_template.clone());
                rep.patch = Some(plan.new_rc.clone());
                let spec = pod_spec(&old, "/spec/template/spec");
                let selector = LabelSelector {
                    match_labels: Some(plan.old_selector.clone()),
                    ..Default::default()
                };
                let (max_surge, max_unavailable) = rc_surge(s, plan.replicas);
                let checks = Checks {
                    spec: &spec,
                    selector: &selector,
                    strategy: Some(capacity::Strategy {
                        replicas: plan.replicas,
                        max_surge,
                        max_unavailable,
                    }),
                };
                if let Some(pinned) =
                    preflight(ctx, w, rep, &checks, &plan.container, &plan.new_image, out).await?
                {
                    plan = planner(
                        &ImageChange::Image(pinned),
                        Some(&plan.container),
                        Some(&plan.version),
                    )?;
                    rep.image = Some(plan.new_image.clone());
                    rep.patch = Some(plan.new_rc.clone());
                }
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
            rep: rep.clone(),
            state,
            planned_at: now,
            marker: None,
            read_as,
            ended: None,
            applied: false,
        })
    }

    /// What the dry run would do.
    fn dry_run_text(&self, ns: &str) -> String {
        let patch = |plan: &dep::Plan| {
            format!(
                "pre-flight passed; this JSON Patch would be sent to {} in {ns}:\n{}",
                self.wref,
                serde_json::to_string_pretty(&plan.patch).unwrap_or_default()
            )
        };
        match &self.state {
            State::Deployment(d) => patch(&d.plan),
            State::Template(t) => patch(&t.plan),
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
                let _ = out.flush();
                // Issue #8: the same patch marks the rollout in progress (for
                // recovery after a SIGKILL); a 409/422 is re-read and
                // re-checked, never clobbered.
                let mut marker = mark_patch(ctx, &w, &mut d.plan, &self.planned_at, &self.read_as);
                let previous = d.plan.previous_template.clone();
                let patched = match recovery::patch_rechecked(
                    &ctx.client,
                    w.kind.as_str(),
                    &ctx.ns,
                    &w.name,
                    &mut d.plan.patch,
                    &previous,
                    &mut marker,
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
                tracing::info!("patched {w} to {}", d.plan.new_image);
                self.marker = Some(marker);
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
                if let Some(generation) =
                    refresh_resource_version(ctx, &w, &t.raw, &mut t.plan.patch).await?
                {
                    self.read_as.1 = generation;
                }
                let mut marker = mark_patch(ctx, &w, &mut t.plan, &self.planned_at, &self.read_as);
                let previous = t.plan.previous_template.clone();
                let patched = match recovery::patch_rechecked(
                    &ctx.client,
                    w.kind.as_str(),
                    &ctx.ns,
                    &w.name,
                    &mut t.plan.patch,
                    &previous,
                    &mut marker,
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
                self.marker = Some(marker);
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
                let min_ready = tracker
                    .snapshot()
                    .deployment
                    .and_then(|d| d.spec.as_ref().and_then(|s| s.min_ready_seconds))
                    .map(i64::from);
                let max_unavailable = tracker
                    .snapshot()
                    .deployment
                    .map(|d| capacity::strategy(&d).max_unavailable.max(0) as usize)
                    .unwrap_or(0);
                let mut guards = Guards::new(
                    ctx.client.clone(),
                    &ctx.ns,
                    Stability::window_for(s.stable_for, min_ready),
                    s.scale_up_grace,
                    max_unavailable,
                );
                let container = d.plan.container.clone();
                let mut ended =
                    track::follow_rollout(tracker, exp, deadline, &mut guards, &container, out)
                        .await;
                if let Some(n) = guards.stable_note.take() {
                    self.rep.stability = Some(n);
                }
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
                let ours = t
                    .patched
                    .as_ref()
                    .and_then(|p| p.pointer("/spec/template"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let container = t.plan.container.clone();
                let superseded = |snap: &WatchSnapshot| {
                    snap.object(&name).and_then(|o| {
                        crate::superseded::superseded(o, generation, &ours, &container)
                    })
                };
                let min_ready = t
                    .raw
                    .pointer("/spec/minReadySeconds")
                    .and_then(Value::as_i64);
                // A StatefulSet replaces one pod at a time; a DaemonSet's
                // maxUnavailable defaults to 1.
                let max_unavailable = t
                    .raw
                    .pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable")
                    .and_then(Value::as_u64)
                    .unwrap_or(1) as usize;
                let mut guards = Guards::new(
                    ctx.client.clone(),
                    &ctx.ns,
                    Stability::window_for(s.stable_for, min_ready),
                    s.scale_up_grace,
                    max_unavailable,
                );
                let ended = track::follow_pods(
                    watch,
                    &ctx.limits,
                    deadline,
                    s.bake,
                    &mut guards,
                    out,
                    judge,
                    superseded,
                )
                .await;
                if let Some(n) = guards.stable_note.take() {
                    self.rep.stability = Some(n);
                }
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
                diagnose_deployment(
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

    /// A short excerpt of this workload's events (success events left out).
    fn events_excerpt(&self) -> Vec<String> {
        let name = &self.wref.name;
        match &self.state {
            State::Deployment(d) => d
                .tracker
                .as_ref()
                .map(|t| report::events::excerpt(&t.snapshot().events, name))
                .unwrap_or_default(),
            State::Template(t) => t
                .watch
                .as_ref()
                .map(|w| report::events::excerpt(&w.snapshot().events, name))
                .unwrap_or_default(),
            State::Rc(r) => r
                .watch
                .as_ref()
                .map(|w| report::events::excerpt(&w.snapshot().events, name))
                .unwrap_or_default(),
        }
    }

    /// Undo our change and watch the previous version become healthy.
    async fn roll_back(&mut self, ctx: &Ctx<'_>, out: &mut (dyn Write + Send)) -> (bool, String) {
        let w = self.wref.clone();
        if let Some(Ended::Failed {
            cause: Cause::Superseded,
            ..
        }) = &self.ended
        {
            // Rolling back would overwrite the other writer's change.
            let m = format!(
                "not rolled back: another writer changed {w} during the rollout; their change is left in place"
            );
            let _ = writeln!(out, "{m}");
            return (false, m);
        }
        match &mut self.state {
            State::Deployment(d) => {
                let (Some(tracker), Some(patched)) = (d.tracker.as_mut(), d.patched.as_ref())
                else {
                    return (true, "nothing was changed".into());
                };
                let ended = roll_back_deployment(ctx, &w, patched, &d.plan, tracker, out).await;
                // The revision that serves now (the controller gives the
                // restored ReplicaSet a new revision number).
                self.rep.serving_revision = tracker
                    .snapshot()
                    .deployment
                    .and_then(|d| d.metadata.annotations.clone())
                    .and_then(|a| a.get(dep::REVISION).cloned());
                ended
            }
            State::Template(t) => roll_back_template(ctx, &w, t, &mut self.rep.notes, out).await,
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

/// The in-progress marker (issue #8) added to the plan's patch; the
/// second-signal handler is told which object and phase this is.
fn mark_patch(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    plan: &mut dep::Plan,
    started: &str,
    read_as: &(String, i64),
) -> recovery::Marker {
    // Bound to this object at the generation our patch gives it.
    let marker = recovery::Marker::new(
        &ctx.settings.reliability.identity,
        started,
        &plan.new_image,
        &plan.old_image,
        &plan.previous_template,
    )
    .bound_to(&read_as.0, read_as.1 + 1);
    recovery::mark(&mut plan.patch, &marker);
    cancel::set_target(
        &ctx.client,
        recovery::path_of(w.kind.as_str(), &ctx.ns, &w.name),
    );
    cancel::set_phase(format!(
        "rolling out {} (previously {})",
        plan.new_image, plan.old_image
    ));
    marker
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
) -> Result<Option<i64>, Stop> {
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
        // The patch lands on the fresh object: its generation is the one
        // the in-progress marker binds to.
        return Ok(fresh
            .pointer("/metadata/generation")
            .and_then(Value::as_i64));
    }
    Ok(None)
}

/// Send the patch that restores the exact pre-patch template (and our
/// annotations) over what our patch wrote; the rollback's generation, or
/// why it was not sent. Issue #8: a lost response of a landed rollback is
/// re-checked, not failed; another writer's change is never overwritten.
async fn restore_template(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    patched: &Value,
    plan: &dep::Plan,
) -> Result<i64, String> {
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
    let response = match recovery::rollback_rechecked(
        &ctx.client,
        w.kind.as_str(),
        &ctx.ns,
        &w.name,
        &patch,
        &plan.previous_template,
    )
    .await
    {
        Ok(v) => v,
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 409 => {
            return Err(format!(
                "someone else changed the pod template of {w} after our patch; not overwriting their change ({})",
                e.message
            ));
        }
        Err(e) => return Err(format!("the rollback patch failed: {e}")),
    };
    Ok(response
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0))
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
    let generation = match restore_template(ctx, w, patched, &t.plan).await {
        Ok(g) => g,
        Err(why) => return (false, why),
    };
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

/// Restore the exact pre-patch template; watch it become healthy.
async fn roll_back_deployment(
    ctx: &Ctx<'_>,
    w: &WorkloadRef,
    patched: &Value,
    plan: &dep::Plan,
    tracker: &mut Tracker,
    out: &mut (dyn Write + Send),
) -> (bool, String) {
    let settings = ctx.settings;
    let generation = match restore_template(ctx, w, patched, plan).await {
        Ok(g) => g,
        Err(why) => return (false, why),
    };
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
pub(crate) async fn diagnose_deployment(
    client: &Client,
    ns: &str,
    snap: &dep::Snapshot,
    exp: &Expectations,
    plan: &dep::Plan,
    cause: Cause,
    signals: &[Signal],
    progress: &dep::Progress,
    timed_out: bool,
) -> Vec<Finding> {
    let logs = crash_logs(client, ns, signals).await;
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
    let desired = r.plan.replicas;
    let (surge, unavailable) = rc_surge(ctx.settings, desired);
    let (old_name, new_name) = (r.plan.old_name.clone(), r.plan.new_name.clone());
    let Some(watch) = r.watch.as_mut() else {
        return Ended::TimedOut {
            progress: Progress::default(),
            signals: Vec::new(),
        };
    };
    let mut clocks = track::Clocks::default();
    let mut last_line = String::new();
    let min_ready = r
        .old
        .pointer("/spec/minReadySeconds")
        .and_then(Value::as_i64);
    let mut guards = Guards::new(
        ctx.client.clone(),
        &ctx.ns,
        Stability::window_for(ctx.settings.stable_for, min_ready),
        ctx.settings.scale_up_grace,
        unavailable.max(0) as usize,
    );
    loop {
        watch.next_change().await;
        let now = Instant::now();
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
        let mut timers = clocks.update(&signals, workload::restart_counts(&new_pods));
        if watch.is_ready()
            && let Some(b) = guards.crashed(new_pods.iter().map(|p| &**p), now)
        {
            return Ended::Failed {
                progress: Progress {
                    name: new_name.clone(),
                    desired,
                    ..Default::default()
                },
                cause: b.cause,
                signals: b.signals,
            };
        }
        if watch.is_ready() {
            let new_refs: Vec<&Pod> = new_pods.iter().map(|p| &**p).collect();
            let old_refs: Vec<&Pod> = old_pods.iter().map(|p| &***p).collect();
            if let Some((cause, signals)) = guards
                .unschedulable(
                    &new_refs,
                    &old_refs,
                    &signals,
                    &snap.events,
                    &mut timers,
                    now,
                )
                .await
            {
                return Ended::Failed {
                    progress: Progress {
                        name: new_name.clone(),
                        desired,
                        ..Default::default()
                    },
                    cause,
                    signals,
                };
            }
        }
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
            let stable = guards.stability.check(new_pods.iter().map(|p| &**p), now);
            match (step, stable) {
                (Step::Done, Check::Stable { shortest })
                    if timers.recently_restarted.is_empty() =>
                {
                    let line = progress.line();
                    if line != last_line {
                        let _ = writeln!(out, "{line}");
                    }
                    let note = guards.stability.stable_note(shortest);
                    let _ = writeln!(out, "{note}");
                    rep.stability = Some(note);
                    return Ended::Succeeded(progress);
                }
                (Step::Done, Check::Waiting { pending, next })
                    if timers.recently_restarted.is_empty() =>
                {
                    progress.waiting_for = guards.stability.waiting_for(pending, next);
                }
                (Step::Wait(w), _) => progress.waiting_for = w,
                _ => progress.waiting_for = "the new pods to stay up after a restart".into(),
            }
            if let Some(note) = &guards.scale_up_note {
                progress.waiting_for = note.clone();
            }
            let mut line = progress.line();
            if !progress.waiting_for.is_empty() {
                line.push_str(&format!("  waiting for {}", progress.waiting_for));
            }
            if line != last_line {
                let _ = writeln!(out, "{line}");
                last_line = line;
            }
            guards.heartbeat(
                &progress.waiting_for,
                &signals,
                deadline,
                ctx.settings.unschedulable_grace,
                now,
                out,
            );
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

/// Issue #8: the deploy lock of every workload (released when the guards
/// drop), taken in kind/name order so two group runs never wait on each
/// other crosswise; each lock taken also rolls back an interrupted run's
/// orphaned change on that workload (src/lock.rs, src/recovery.rs).
async fn take_locks(ctx: &Ctx<'_>, out: &mut (dyn Write + Send)) -> Result<Vec<lock::Guard>, Stop> {
    let mut order: Vec<&WorkloadRef> = ctx.settings.workloads.iter().collect();
    order.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
    order.dedup_by(|a, b| a.kind == b.kind && a.name == b.name);
    let mut guards = Vec::new();
    for w in order {
        let begun = lock::begin(
            &ctx.client,
            &ctx.ns,
            w.kind.as_str(),
            &w.name,
            &ctx.settings.reliability,
            ctx.settings.rollback_timeout,
            out,
        )
        .await
        .map_err(|(code, message)| stop(code, message))?;
        guards.push(begun.guard);
    }
    Ok(guards)
}

/// A run of one workload that stopped before its change: the report keeps
/// what was planned (and the pre-flight finding).
fn report_planned(report: &mut Report, rep: &WorkloadReport) {
    report.container = rep.container.clone();
    report.previous_image = rep.previous_image.clone();
    report.image = rep.image.clone();
    report.version = rep.version.clone();
    report.previous_template = rep.previous_template.clone();
    report.patch = rep.patch.clone();
    if !rep.findings.is_empty() {
        report.cause = rep.cause.clone();
        report.findings = rep.findings.clone();
    }
}

/// The run is over for every applied workload: clear our in-progress
/// markers, and keep the old-vs-new timeline (of the first Deployment).
async fn close_units(ctx: &Ctx<'_>, units: &mut [Unit], report: &mut Report) {
    // (Collected first: a `Unit` is not `Sync`, no reference to one is held across an await.)
    let marked: Vec<(WorkloadRef, recovery::Marker)> = units
        .iter()
        .filter_map(|u| Some((u.wref.clone(), u.marker.clone()?)))
        .collect();
    for (w, m) in &marked {
        recovery::clear(&ctx.client, w.kind.as_str(), &ctx.ns, &w.name, m).await;
    }
    if ctx.settings.canary.is_some() {
        for u in units.iter_mut() {
            crate::canary::cleanup::after_run(&ctx.client, &ctx.ns, &u.wref, &mut u.rep).await;
        }
    }
    // The chart shows one Deployment: the first that failed, else the first.
    let is_dep = |u: &Unit| matches!(u.state, State::Deployment(_));
    let pick = units
        .iter()
        .position(|u| {
            is_dep(u) && matches!(u.ended, Some(Ended::Failed { .. } | Ended::TimedOut { .. }))
        })
        .or_else(|| units.iter().position(is_dep));
    let group = units.len() > 1;
    if let Some(u) = pick.and_then(|i| units.get_mut(i))
        && let State::Deployment(d) = &mut u.state
        && let Some(t) = d.tracker.as_mut()
    {
        report.timeline = std::mem::take(&mut t.timeline);
        if group {
            report.timeline_of = Some(u.wref.to_string());
        }
    }
}

/// Roll out every workload of the run together (all-or-nothing). Fills the
/// report: `report.workloads` per workload (not for a single Deployment,
/// whose report is the classic one), and the top-level fields.
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
    let single = settings.workloads.len() == 1;
    let ctx = Ctx {
        client,
        ns,
        settings,
        limits: Limits {
            restart_threshold: settings.restart_threshold,
            unschedulable_grace: settings.unschedulable_grace,
        },
        single,
    };

    // Pre-flight and plans: nothing changes until every workload passed.
    check_permissions(
        &ctx.client,
        &ctx.ns,
        &settings.workloads,
        settings.reliability.lock && !settings.dry_run,
    )
    .await?;
    let _locks = if settings.dry_run {
        Vec::new()
    } else {
        take_locks(&ctx, out).await?
    };
    let mut units = Vec::new();
    for w in &settings.workloads {
        let mut rep = WorkloadReport::new(w.to_string());
        match Unit::prepare(&ctx, w, &mut rep, out).await {
            Ok(u) => units.push(u),
            Err(e) => {
                if single {
                    report_planned(report, &rep);
                }
                return Err(e);
            }
        }
    }
    if settings.dry_run {
        for u in &units {
            let _ = writeln!(out, "dry run: {}", u.dry_run_text(&ctx.ns));
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

    // The canary step (one Deployment or StatefulSet): a Deployment's
    // canary runs and is judged before the stable one is touched; a
    // StatefulSet's partition goes into the template patch.
    if let Some(c) = settings.canary
        && let Some(u) = units.first_mut()
    {
        match &mut u.state {
            State::Deployment(d) => {
                d.selector = crate::canary::without_canary(&d.selector);
                let ran = crate::canary::deployment::run(
                    &ctx.client,
                    &ctx.ns,
                    settings,
                    c,
                    &u.wref,
                    &d.plan,
                    &u.planned_at,
                    &mut u.rep,
                    out,
                )
                .await?;
                if let Some((code, result)) = ran {
                    close_units(&ctx, &mut units, report).await;
                    summarise(report, units, single, code, result);
                    return Ok(code);
                }
            }
            State::Template(t) => {
                crate::canary::statefulset::plan(&t.raw, c, &u.wref, &mut t.plan.patch)?;
            }
            State::Rc(_) => {}
        }
    }
    let sink: Mutex<&mut (dyn Write + Send)> = Mutex::new(out);
    let writer = |u: &Unit| prefixed(&sink, single, u);

    // Apply, one workload after the other; a failure undoes the earlier ones.
    let mut failed_apply: Option<Stop> = None;
    for unit in units.iter_mut() {
        let mut w = writer(unit);
        if let Err(e) = unit.apply(&ctx, &mut w).await {
            if !single {
                let _ = writeln!(w, "{}", e.message);
            }
            unit.rep.headline = e.message.clone();
            unit.rep.result = Conclusion::Invalid;
            unit.rep.exit_code = e.code.code();
            failed_apply = Some(e);
            break;
        }
    }
    let mut cancelled: Option<&'static str> = None;
    // The StatefulSet canary's ordinals are judged and held after the patch.
    if let Some(c) = settings.canary
        && failed_apply.is_none()
        && let Some(u) = units.first_mut()
        && let State::Template(t) = &mut u.state
        && let Some(ours) = t.patched.as_ref().and_then(|p| p.pointer("/spec/template"))
    {
        // (A canary run has one workload: its lines carry no prefix.)
        let mut w = Prefixed {
            sink: &sink,
            prefix: String::new(),
            buf: Vec::new(),
        };
        match crate::canary::statefulset::hold(
            &ctx.client,
            &ctx.ns,
            settings,
            c,
            &u.wref,
            &t.raw,
            t.generation,
            ours,
            &t.plan.container,
            &mut u.rep,
            &mut w,
        )
        .await
        {
            crate::canary::statefulset::Hold::Passed => {}
            crate::canary::statefulset::Hold::Failed { ended, revision } => {
                t.revision = revision;
                u.ended = Some(ended);
            }
            crate::canary::statefulset::Hold::Cancelled(why) => cancelled = Some(why),
        }
    }
    let deadline = Instant::now() + settings.timeout;
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
    // Issue #8: a SIGTERM/SIGINT (CI cancel) ends the tracking (src/cancel.rs).
    let cancel = cancel::current();
    if let Some(e) = &failed_apply {
        let _ = abort_tx.send(true);
        if units.iter().all(|u| !u.applied) {
            if single && let Some(u) = units.first() {
                report_planned(report, &u.rep);
            }
            return Err(stop(e.code, e.message.clone()));
        }
    } else if cancelled.is_none() && units.iter().all(|u| u.ended.is_none()) {
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
        tokio::select! {
            _ = futures::future::join_all(follows) => {}
            why = cancel.cancelled() => cancelled = Some(why),
        }
    }
    let all_ok = cancelled.is_none()
        && failed_apply.is_none()
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
        close_units(&ctx, &mut units, report).await;
        summarise(report, units, single, code, Conclusion::Succeeded);
        return Ok(code);
    }

    // Something failed: diagnose the failures, then roll every applied
    // workload back. Issue #8: a cancel meanwhile rolls back within the grace.
    if cancelled.is_none() {
        let settle = settle_failure(&ctx, &mut units, failed_apply.as_ref(), &sink);
        tokio::select! {
            (code, result) = settle => {
                close_units(&ctx, &mut units, report).await;
                summarise(report, units, single, code, result);
                return Ok(code);
            }
            why = cancel.cancelled() => cancelled = Some(why),
        }
    }
    let why = cancelled.unwrap_or("a signal");
    let (code, result) = cancel_units(&ctx, &mut units, why, &sink).await;
    close_units(&ctx, &mut units, report).await;
    let n = units.len();
    summarise(report, units, single, code, result);
    if !single {
        report.cause = Some(format!("cancelled by {why}"));
        report.headline = format!(
            "{n} workloads cancelled ({why}): {}",
            match (settings.reliability.on_cancel, code) {
                (cancel::OnCancel::Leave, _) => "left in place (on-cancel=leave)",
                (_, ExitCode::RollbackFailed) => "a rollback was not confirmed",
                _ => "all rolled back",
            }
        );
    }
    Ok(code)
}

/// The writer of one workload's lines (prefixed by the workload in a group).
fn prefixed<'a>(
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
    single: bool,
    u: &Unit,
) -> Prefixed<'a> {
    Prefixed {
        sink,
        prefix: if single {
            String::new()
        } else {
            format!("[{}] ", u.wref)
        },
        buf: Vec::new(),
    }
}

/// Some workload failed (or the apply step did): diagnose the failures,
/// then roll every applied workload back (unless rollback=false). The
/// exit code (the worst of the workloads') and the conclusion.
async fn settle_failure<'a>(
    ctx: &Ctx<'_>,
    units: &mut [Unit],
    failed_apply: Option<&Stop>,
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
) -> (ExitCode, Conclusion) {
    // Something failed: diagnose the failures, then roll every applied workload back.
    let culprits: Vec<String> = units
        .iter()
        .filter(|u| matches!(u.ended, Some(Ended::Failed { .. } | Ended::TimedOut { .. })))
        .map(|u| u.wref.to_string())
        .chain(failed_apply.map(|_| "the apply step".to_string()))
        .collect();
    for u in units.iter_mut() {
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
        u.rep.findings = u.diagnose(ctx, cause, &signals, &progress, timed_out).await;
        u.rep.events = u.events_excerpt();
        u.rep.cause = u.rep.findings.first().map(|f| f.summary.clone());
        let what = if timed_out {
            format!(
                "timed out after {}",
                humantime::format_duration(ctx.settings.timeout)
            )
        } else {
            "failed".into()
        };
        let mut w = prefixed(sink, ctx.single, u);
        // The cause in a word: the summary after the log group says it in full.
        let _ = writeln!(
            w,
            "rollout of {} {what} ({})",
            u.rep.image.as_deref().unwrap_or("?"),
            u.rep
                .findings
                .first()
                .map_or(cause.title(), |f| f.cause.title())
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
    if !ctx.settings.rollback {
        for u in units.iter_mut() {
            let own_failure = culprits.contains(&u.wref.to_string());
            u.rep.rollback = Some(report::Rollback {
                attempted: false,
                confirmed: false,
                detail: if own_failure {
                    "rollback=false: the failed rollout was left in place"
                } else {
                    "rollback=false: left in place"
                }
                .into(),
            });
            if own_failure {
                u.rep.headline.push_str(" (left in place)");
            }
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
        let rollbacks = units.iter_mut().filter(|u| u.applied).map(|u| {
            let mut w = prefixed(sink, ctx.single, u);
            async move {
                let superseded = matches!(
                    u.ended,
                    Some(Ended::Failed {
                        cause: Cause::Superseded,
                        ..
                    })
                );
                if let State::Deployment(_) | State::Template(_) = &u.state
                    && !superseded
                {
                    let old = u.rep.previous_image.as_deref().unwrap_or("?");
                    let _ = writeln!(w, "rolling back {} to {old}", u.wref);
                }
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
            } else if matches!(
                u.ended,
                Some(Ended::Failed {
                    cause: Cause::Superseded,
                    ..
                })
            ) {
                u.rep.headline = format!(
                    "{}: another writer changed it during the rollout; stopped, their change left in place (not rolled back)",
                    me
                );
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
    for u in units.iter_mut() {
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
    let mut code = failed_apply.map(|e| e.code).unwrap_or(ExitCode::RolledBack);
    if failed_apply.is_some() && code != ExitCode::RollbackFailed {
        // The apply failure itself changed nothing: the earlier workloads were rolled back.
        code = ExitCode::RolledBack;
    }
    for u in units.iter() {
        let c = match u.rep.exit_code {
            0 => ExitCode::Success,
            1 => ExitCode::RolledBack,
            70 => ExitCode::TimedOut,
            3 => ExitCode::RollbackFailed,
            _ => ExitCode::RolledBack,
        };
        code = worse(code, c);
    }
    let result = if code == ExitCode::RollbackFailed || !ctx.settings.rollback {
        Conclusion::Failed
    } else {
        Conclusion::RolledBack
    };
    (code, result)
}

/// The run was cancelled (issue #8): roll back every applied workload
/// within the signal's grace (or leave them: on-cancel=leave). The exit
/// code (1, or 3 when a rollback was not confirmed) and the conclusion.
async fn cancel_units<'a>(
    ctx: &Ctx<'_>,
    units: &mut [Unit],
    why: &'static str,
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
) -> (ExitCode, Conclusion) {
    let on_cancel = ctx.settings.reliability.on_cancel;
    let mut within_grace = ctx.settings.clone();
    within_grace.rollback_timeout = within_grace.rollback_timeout.min(cancel::ROLLBACK_BUDGET);
    let grace = Ctx {
        client: ctx.client.clone(),
        ns: ctx.ns.clone(),
        settings: &within_grace,
        limits: ctx.limits,
        single: ctx.single,
    };
    let grace = &grace;
    let rollbacks = units.iter_mut().filter(|u| u.applied).map(|u| {
        let mut w = prefixed(sink, ctx.single, u);
        async move {
            let old = u.rep.previous_image.clone().unwrap_or_default();
            let new = u.rep.image.clone().unwrap_or_default();
            // A rollout that had already failed (the signal came during its
            // rollback) keeps its verdict and cause; its rollback goes on
            // whatever on-cancel says (it was decided before the signal).
            let verdict = match &u.ended {
                Some(Ended::TimedOut { .. }) => Some((
                    ExitCode::TimedOut,
                    u.rep
                        .cause
                        .clone()
                        .unwrap_or_else(|| Cause::Timeout.title().to_string()),
                )),
                Some(Ended::Failed { cause, .. }) => Some((
                    ExitCode::RolledBack,
                    u.rep
                        .cause
                        .clone()
                        .unwrap_or_else(|| cause.title().to_string()),
                )),
                _ => None,
            };
            let on_cancel = if verdict.is_some() {
                cancel::OnCancel::Rollback
            } else {
                on_cancel
            };
            let _ = writeln!(w, "{}", cancel::announce(why, on_cancel, &old));
            cancel::set_phase(format!("rolling back to {old} after a cancel"));
            let rolled = match on_cancel {
                cancel::OnCancel::Rollback => Some(u.roll_back(grace, &mut w).await),
                cancel::OnCancel::Leave => None,
            };
            let mut concluded = Report::new(String::new());
            let mut code =
                cancel::conclude(why, &u.wref.to_string(), &new, &old, rolled, &mut concluded);
            u.rep.rollback = concluded.rollback;
            u.rep.result = concluded.result;
            match verdict {
                Some((verdict_code, cause)) => {
                    let failed = if verdict_code == ExitCode::TimedOut {
                        format!(
                            "timed out after {}",
                            humantime::format_duration(ctx.settings.timeout)
                        )
                    } else {
                        "failed".to_string()
                    };
                    let rollback = if code == ExitCode::RollbackFailed {
                        format!("{why} during the rollback, which was not confirmed")
                    } else {
                        format!("rolled back to {old} ({why} during the rollback)")
                    };
                    u.rep.headline = format!("{}: rollout of {new} {failed}; {rollback}", u.wref);
                    u.rep.cause = Some(cause);
                    if code != ExitCode::RollbackFailed {
                        code = verdict_code;
                    }
                }
                None => {
                    u.rep.cause = concluded.cause;
                    u.rep.headline = concluded.headline;
                }
            }
            u.rep.exit_code = code.code();
            code
        }
    });
    let code = futures::future::join_all(rollbacks)
        .await
        .into_iter()
        .fold(ExitCode::RolledBack, worse);
    let result = match units.first() {
        Some(u) if ctx.single => u.rep.result,
        _ if code == ExitCode::RollbackFailed || on_cancel == cancel::OnCancel::Leave => {
            Conclusion::Failed
        }
        _ => Conclusion::RolledBack,
    };
    (code, result)
}

/// Which workloads failed (and why, in a word), and which were rolled
/// back (or left unchanged) because of them.
fn group_failure_headline(reps: &[WorkloadReport], failed: &[&WorkloadReport]) -> String {
    let names = |v: &[&WorkloadReport]| {
        v.iter()
            .map(|r| r.workload.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let culprits = failed
        .iter()
        .map(|r| {
            let why = r
                .findings
                .first()
                .map(|f| f.cause.title())
                .unwrap_or("failed");
            format!("{} failed ({why})", r.workload)
        })
        .collect::<Vec<_>>()
        .join("; ");
    let others: Vec<&WorkloadReport> = reps.iter().filter(|r| r.findings.is_empty()).collect();
    let unconfirmed = reps.iter().any(|r| {
        r.rollback
            .as_ref()
            .is_some_and(|b| b.attempted && !b.confirmed)
    });
    let rolled: Vec<&WorkloadReport> = others
        .iter()
        .copied()
        .filter(|r| r.rollback.as_ref().is_some_and(|b| b.attempted))
        .collect();
    let untouched: Vec<&WorkloadReport> = others
        .iter()
        .copied()
        .filter(|r| r.rollback.as_ref().is_none_or(|b| !b.attempted))
        .collect();
    let mut s = culprits;
    if failed
        .iter()
        .any(|r| r.rollback.as_ref().is_some_and(|b| b.attempted))
    {
        s.push_str(if failed.len() == 1 {
            " and was rolled back"
        } else {
            "; they were rolled back"
        });
    }
    if !rolled.is_empty() {
        s.push_str(&format!(
            "; {} rolled back with {} (all-or-nothing)",
            names(&rolled),
            if failed.len() == 1 { "it" } else { "them" }
        ));
    }
    if !untouched.is_empty() {
        s.push_str(&format!("; {} not changed", names(&untouched)));
    }
    if unconfirmed {
        s.push_str("; a rollback was NOT confirmed");
    }
    s
}

/// Fill the top-level report from the workloads' reports.
fn summarise(
    report: &mut Report,
    units: Vec<Unit>,
    single: bool,
    code: ExitCode,
    result: Conclusion,
) {
    // A single Deployment's report is the classic one (no `workloads`).
    let classic = single
        && units
            .first()
            .is_some_and(|u| u.wref.kind == Kind::Deployment);
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
        report.stability = r.stability.clone();
        report.canary = r.canary.clone();
        report.revision = r.revision.clone();
        report.serving_revision = r.serving_revision.clone();
        report.events = r.events.clone();
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
        report.headline = if failed.is_empty() || code == ExitCode::Success {
            format!("{} workloads {word}", reps.len())
        } else {
            group_failure_headline(&reps, &failed)
        };
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
    if !classic {
        report.workloads = reps;
    }
}
