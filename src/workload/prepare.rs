//! What every kind does the same way before its change: read the workload,
//! plan the patch, run the pre-flight checks (the image exists, the new pods
//! fit), and plan again for a pinned digest. Nothing here changes the cluster.

use std::io::Write;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::config::CapacityCheck;

use crate::exit::ExitCode;
use crate::image::ImageChange;
use crate::k8s::objects::{get_obj, is_status};
use crate::preflight::capacity;
use crate::report::WorkloadReport;
use crate::workload::WorkloadRef;
use crate::workload::deployment as dep;
use crate::workload::rollout::{Ctx, Step};
use crate::{Stop, cluster_error, stop};

/// Read the workload as raw JSON (every field kept); a missing one is bad
/// input. What the recovery read under the deploy lock, when it changed
/// nothing, is taken instead of reading again.
pub(crate) async fn read(ctx: &Ctx<'_>, w: &WorkloadRef) -> Result<Value, Stop> {
    let path = crate::recovery::path_of(w.kind.as_str(), &ctx.ns, &w.name);
    if let Some(seen) = ctx.seen.lock().ok().and_then(|mut s| s.remove(&path)) {
        return Ok(seen);
    }
    match get_obj(&ctx.client, w.kind, &ctx.ns, &w.name).await {
        Ok(v) => Ok(v),
        Err(e) if is_status(&e, 404) => Err(not_found(w, &ctx.ns)),
        Err(e) => Err(cluster_error(&e, &format!("reading {w}"))),
    }
}

/// What the pre-flight checks of one workload look at.
pub(crate) struct Checks<'a> {
    pub spec: &'a PodSpec,
    pub selector: &'a LabelSelector,
    /// None: no capacity check (a DaemonSet's pods are per node).
    pub strategy: Option<capacity::Strategy>,
}

/// The pre-flight checks (the image exists, the new pods fit)
/// for any kind; `Some` is the pinned image (pin-digest). A failure is
/// recorded in `rep` and stops the run before anything changed.
pub(crate) async fn preflight(
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

/// Plan one patch with `planner` (what the run asks, planned at `now`),
/// run the pre-flight checks, and plan again for a pinned digest
/// (pin-digest: the same plan for `repo:tag@sha256:…`; the version still
/// comes from the tag). A plan that cannot be made is bad input.
pub(crate) async fn plan_checked(
    ctx: &Ctx<'_>,
    s: &mut Step<'_>,
    checks: &Checks<'_>,
    now: &str,
    planner: impl Fn(&dep::Ask<'_>) -> Result<dep::Plan, dep::NotRollable>,
) -> Result<dep::Plan, Stop> {
    let Step { w, rep, out } = s;
    let settings = ctx.settings;
    let planner = |change: &ImageChange, container: Option<&str>, version: Option<&str>| {
        planner(&dep::Ask {
            container,
            change,
            version,
            version_label: &settings.version_label,
            origin: &settings.run_origin,
            now,
        })
        .map_err(|e| stop(ExitCode::BadInput, e.0))
    };
    let s = settings;
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

pub(crate) fn not_found(w: &WorkloadRef, ns: &str) -> Stop {
    stop(
        ExitCode::BadInput,
        format!("{w} not found in namespace {ns}: check the workload and namespace inputs"),
    )
}
