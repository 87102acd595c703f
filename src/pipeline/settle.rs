//! After a failure or a cancel: diagnose what failed, roll every applied
//! workload back (together, all-or-nothing), and fold the workloads'
//! outcomes into the run's exit code and conclusion.

use std::io::Write;
use std::sync::Mutex;

use crate::Stop;
use crate::cancel;
use crate::exit::ExitCode;
use crate::model::Cause;
use crate::pipeline::output::prefixed;
use crate::pipeline::unit::Unit;
use crate::report::{self, Conclusion, Report};
use crate::track::Ended;
use crate::workload::rollout::Ctx;

/// Some workload failed (or the apply step did): diagnose the failures,
/// then roll every applied workload back (unless rollback=false). The
/// exit code (the worst of the workloads') and the conclusion.
pub(crate) async fn settle_failure<'a>(
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
        let (progress, cause, signals, timed_out) = match ended.failure() {
            Ok(failure) => failure,
            Err(p) => {
                u.rep.progress = Some(p);
                continue;
            }
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
        let mut w = prefixed(sink, ctx.single, &u.wref);
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
            let mut w = prefixed(sink, ctx.single, &u.wref);
            async move {
                u.announce_rollback(&mut w);
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
            } else if u.superseded() {
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
        code = code.worse(ExitCode::of_verdict(u.rep.exit_code));
    }
    let result = if code == ExitCode::RollbackFailed || !ctx.settings.rollback {
        Conclusion::Failed
    } else {
        Conclusion::RolledBack
    };
    (code, result)
}

/// The run was cancelled: roll back every applied workload
/// within the signal's grace (or leave them: on-cancel=leave). The exit
/// code (1, or 3 when a rollback was not confirmed) and the conclusion.
pub(crate) async fn cancel_units<'a>(
    ctx: &Ctx<'_>,
    units: &mut [Unit],
    why: &'static str,
    sink: &'a Mutex<&'a mut (dyn Write + Send)>,
) -> (ExitCode, Conclusion) {
    let on_cancel = ctx.settings.reliability.on_cancel;
    let mut within_grace = ctx.settings.clone();
    within_grace.rollback_timeout = within_grace.rollback_timeout.min(cancel::ROLLBACK_BUDGET);
    let grace = ctx.with_settings(&within_grace);
    let grace = &grace;
    let rollbacks = units.iter_mut().filter(|u| u.applied).map(|u| {
        let mut w = prefixed(sink, ctx.single, &u.wref);
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
            if let Some(t) = &u.cancel_target {
                t.set_phase(format!("rolling back to {old} after a cancel"));
            }
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
        .fold(ExitCode::RolledBack, ExitCode::worse);
    let result = match units.first() {
        Some(u) if ctx.single => u.rep.result,
        _ if code == ExitCode::RollbackFailed || on_cancel == cancel::OnCancel::Leave => {
            Conclusion::Failed
        }
        _ => Conclusion::RolledBack,
    };
    (code, result)
}
