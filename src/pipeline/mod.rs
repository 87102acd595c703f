//! The run as a list of phases, for one workload or a group of any kinds:
//!
//! 1. connect and check every permission (nothing changes yet);
//! 2. take the deploy lock of each workload, undoing an interrupted run's
//!    change first;
//! 3. prepare: read, plan and pre-flight every workload (a dry run stops here);
//! 4. the canary, when asked for: a few pods of the new version judged and
//!    held first (a failure ends the run with the stable version untouched);
//! 5. apply the changes, one workload after the other;
//! 6. follow them all concurrently until each has a verdict (the first
//!    failure stops the others);
//! 7. commit on success; otherwise diagnose and roll every applied workload
//!    back (all-or-nothing), or roll back within the grace of a cancel;
//! 8. report (the canary removed in every outcome): the exit code is the worst of the workloads' codes
//!    (3 rollback failed > 70 timed out > 1 failed, rolled back > 0).

use std::io::Write;
use std::sync::Mutex;

use tokio::time::Instant;

use crate::config::Settings;
use crate::exit::ExitCode;
use crate::report::{Conclusion, Report};
use crate::track::Ended;
use crate::workload::kinds::AnyRollout;
use crate::workload::rollout::Ctx;
use crate::workload::{Kind, Limits, WorkloadRef};
use crate::{Stop, cancel, lock, recovery, stop};

mod group;
mod output;
mod permissions;
mod settle;
mod unit;

use output::prefixed;
use unit::Unit;

/// Roll out every workload of the run together (all-or-nothing). Fills the
/// report: `report.workloads` per workload (not for a single Deployment,
/// whose report is the classic one), and the top-level fields.
pub(crate) async fn deploy_group(
    settings: &Settings,
    report: &mut Report,
    out: &mut (dyn Write + Send),
) -> Result<ExitCode, Stop> {
    let ctx = connect(settings, report).await?;
    permissions::check_permissions(
        &ctx.client,
        &ctx.ns,
        &settings.workloads,
        settings.reliability.lock && !settings.dry_run,
        settings.canary.is_some() && !settings.dry_run,
    )
    .await?;
    let _locks = if settings.dry_run {
        Vec::new()
    } else {
        take_locks(&ctx, out).await?
    };
    let mut units = prepare(&ctx, report, out).await?;
    if settings.dry_run {
        return Ok(dry_run(&ctx, units, report, out));
    }
    if let Some(c) = settings.canary {
        for u in units.iter_mut() {
            if let Some((code, result)) = u.canary(&ctx, c, out).await? {
                return Ok(finish(&ctx, units, report, code, result).await);
            }
        }
    }

    let sink: Mutex<&mut (dyn Write + Send)> = Mutex::new(out);
    let failed_apply = apply(&ctx, &mut units, &sink).await;
    if let Some(e) = &failed_apply
        && units.iter().all(|u| !u.applied)
    {
        if ctx.single
            && let Some(u) = units.first()
        {
            group::report_planned(report, &u.rep);
        }
        return Err(stop(e.code, e.message.clone()));
    }
    let cancel = cancel::current();
    let mut cancelled = None;
    if failed_apply.is_none() {
        let deadline = Instant::now() + settings.timeout;
        tokio::select! {
            _ = follow(&ctx, &mut units, deadline, &sink) => {}
            why = cancel.cancelled() => cancelled = Some(why),
        }
    }
    let succeeded = units
        .iter()
        .all(|u| matches!(u.ended, Some(Ended::Succeeded(_))));
    if cancelled.is_none() && failed_apply.is_none() && succeeded {
        commit(&ctx, &mut units, &sink).await;
        return Ok(finish(
            &ctx,
            units,
            report,
            ExitCode::Success,
            Conclusion::Succeeded,
        )
        .await);
    }

    // Something failed: diagnose the failures, then roll every applied
    // workload back. A cancel meanwhile rolls back within the grace.
    if cancelled.is_none() {
        let settle = settle::settle_failure(&ctx, &mut units, failed_apply.as_ref(), &sink);
        tokio::select! {
            (code, result) = settle => {
                return Ok(finish(&ctx, units, report, code, result).await);
            }
            why = cancel.cancelled() => cancelled = Some(why),
        }
    }
    let why = cancelled.unwrap_or("a signal");
    let (code, result) = settle::cancel_units(&ctx, &mut units, why, &sink).await;
    let n = units.len();
    let code = finish(&ctx, units, report, code, result).await;
    if !ctx.single {
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

/// The cluster client and namespace of the run.
async fn connect<'a>(settings: &'a Settings, report: &mut Report) -> Result<Ctx<'a>, Stop> {
    let (client, context_ns) =
        crate::kube_client::connect(&settings.kubeconfig, settings.context.as_deref())
            .await
            .map_err(|e| stop(ExitCode::ClusterConfig, e.0))?;
    let ns = settings.namespace.clone().unwrap_or(context_ns);
    report.namespace = Some(ns.clone());
    Ok(Ctx {
        client,
        ns,
        settings,
        limits: Limits {
            restart_threshold: settings.restart_threshold,
            unschedulable_grace: settings.unschedulable_grace,
        },
        single: settings.workloads.len() == 1,
        seen: Default::default(),
        deployments: Default::default(),
    })
}

/// The deploy lock of every workload (released when the guards drop),
/// taken in kind/name order so two group runs never wait on each other
/// crosswise; each lock taken also rolls back an interrupted run's orphaned
/// change on that workload.
async fn take_locks(ctx: &Ctx<'_>, out: &mut (dyn Write + Send)) -> Result<Vec<lock::Guard>, Stop> {
    let mut order: Vec<&WorkloadRef> = ctx.settings.workloads.iter().collect();
    order.sort_by(|a, b| (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name)));
    order.dedup_by(|a, b| a.kind == b.kind && a.name == b.name);
    let mut guards = Vec::new();
    for w in order {
        let begun = lock::begin(
            &ctx.client,
            AnyRollout::still_waiting_for,
            &ctx.ns,
            w.kind.as_str(),
            &w.name,
            &ctx.settings.reliability,
            ctx.settings.rollback_timeout,
            out,
        )
        .await
        .map_err(|(code, message)| stop(code, message))?;
        if let (Some(seen), Ok(mut all)) = (begun.seen, ctx.seen.lock()) {
            all.insert(recovery::path_of(w.kind.as_str(), &ctx.ns, &w.name), seen);
        }
        guards.push(begun.guard);
    }
    Ok(guards)
}

/// Read, plan and pre-flight every workload: nothing changes until every
/// one passed.
async fn prepare(
    ctx: &Ctx<'_>,
    report: &mut Report,
    out: &mut (dyn Write + Send),
) -> Result<Vec<Unit>, Stop> {
    let mut units = Vec::new();
    for w in &ctx.settings.workloads {
        match Unit::prepare(ctx, w, out).await {
            Ok(u) => units.push(u),
            Err((e, rep)) => {
                if ctx.single {
                    group::report_planned(report, &rep);
                }
                return Err(e);
            }
        }
    }
    Ok(units)
}

/// Say what would be done; nothing changes.
fn dry_run(
    ctx: &Ctx<'_>,
    mut units: Vec<Unit>,
    report: &mut Report,
    out: &mut (dyn Write + Send),
) -> ExitCode {
    for u in &mut units {
        let _ = writeln!(out, "dry run: {}", u.dry_run_text(&ctx.ns));
        let headline = format!(
            "dry run of {}: {} → {} (nothing changed)",
            u.wref,
            u.rep.previous_image.as_deref().unwrap_or("?"),
            u.rep.image.as_deref().unwrap_or("?")
        );
        u.rep
            .conclude(Conclusion::DryRun, ExitCode::Success, headline);
    }
    summarise(units, report, ExitCode::Success, Conclusion::DryRun);
    ExitCode::Success
}

/// Apply, one workload after the other; the first failure stops (and the
/// earlier workloads are rolled back with the others).
async fn apply<'a>(
    ctx: &Ctx<'_>,
    units: &mut [Unit],
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
) -> Option<Stop> {
    for unit in units.iter_mut() {
        let mut w = prefixed(sink, ctx.single, &unit.wref);
        if let Err(e) = unit.apply(ctx, &mut w).await {
            if !ctx.single {
                let _ = writeln!(w, "{}", e.message);
            }
            unit.rep
                .conclude(Conclusion::Invalid, e.code, e.message.clone());
            return Some(e);
        }
    }
    None
}

/// Follow every workload concurrently; the first that does not succeed
/// stops the others (their `ended` stays None).
async fn follow<'a>(
    ctx: &Ctx<'_>,
    units: &mut [Unit],
    deadline: Instant,
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
) {
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(false);
    let abort_tx = &abort_tx;
    let follows = units.iter_mut().map(|u| {
        let mut rx = abort_rx.clone();
        let mut w = prefixed(sink, ctx.single, &u.wref);
        async move {
            let ended = tokio::select! {
                e = u.follow(ctx, deadline, &mut w) => Some(e),
                _ = rx.wait_for(|v| *v) => None,
            };
            if !matches!(ended, Some(Ended::Succeeded(_))) {
                let _ = abort_tx.send(true);
            }
            u.ended = ended;
        }
    });
    futures::future::join_all(follows).await;
}

/// Every workload succeeded: each kind's last step, and the success report.
async fn commit<'a>(
    ctx: &Ctx<'_>,
    units: &mut [Unit],
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
) {
    for u in units.iter_mut() {
        let mut w = prefixed(sink, ctx.single, &u.wref);
        if let Err(e) = u.commit(ctx, &mut w).await {
            let _ = writeln!(w, "{e}");
            u.rep.notes.push(e);
        }
        if let Some(Ended::Succeeded(p)) = &u.ended {
            u.rep.progress = Some(p.clone());
        }
        let headline = format!(
            "{} rolled out {} ({}={})",
            u.wref,
            u.rep.image.as_deref().unwrap_or("?"),
            ctx.settings.version_label,
            u.rep.version.as_deref().unwrap_or("?")
        );
        u.rep
            .conclude(Conclusion::Succeeded, ExitCode::Success, headline);
    }
}

/// The run is over: clear our markers, keep the timeline, fill the report.
async fn finish(
    ctx: &Ctx<'_>,
    mut units: Vec<Unit>,
    report: &mut Report,
    code: ExitCode,
    result: Conclusion,
) -> ExitCode {
    close_units(ctx, &mut units, report).await;
    summarise(units, report, code, result);
    code
}

fn summarise(units: Vec<Unit>, report: &mut Report, code: ExitCode, result: Conclusion) {
    // A single Deployment's report is the classic one (no `workloads`).
    let classic = units.len() == 1 && units[0].wref.kind == Kind::Deployment;
    let reps = units.into_iter().map(|u| u.rep).collect();
    group::summarise(report, reps, classic, code, result);
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
    // The chart shows one workload: the first that failed, else the first.
    let charted = |u: &Unit| u.rollout.has_timeline();
    let pick = units
        .iter()
        .position(|u| {
            charted(u) && matches!(u.ended, Some(Ended::Failed { .. } | Ended::TimedOut { .. }))
        })
        .or_else(|| units.iter().position(charted));
    let group = units.len() > 1;
    if let Some(u) = pick.and_then(|i| units.get_mut(i)) {
        report.timeline = u.rollout.take_timeline();
        if group {
            report.timeline_of = Some(u.wref.to_string());
        }
    }
}
