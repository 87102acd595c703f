//! The group rules, pure: one report made of the workloads' reports (the
//! headline that says who failed and who was rolled back with them, the
//! findings, the merged rollback), and what a run that stopped before its
//! change keeps.

use crate::exit::ExitCode;
use crate::report::{self, Conclusion, Report, WorkloadReport};

/// A run of one workload that stopped before its change: the report keeps
/// what was planned (and the pre-flight finding).
pub(crate) fn report_planned(report: &mut Report, rep: &WorkloadReport) {
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

/// Fill the top-level report from the workloads' reports. `classic`: a
/// single Deployment's report is the classic one (no `workloads`).
pub(crate) fn summarise(
    report: &mut Report,
    reps: Vec<WorkloadReport>,
    classic: bool,
    code: ExitCode,
    result: Conclusion,
) {
    let single = reps.len() == 1;
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
        report.analysis = r.analysis.clone();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cause, Finding};

    fn rep(name: &str, image: &str) -> WorkloadReport {
        let mut r = WorkloadReport::new(name.to_string());
        r.image = Some(image.to_string());
        r.previous_image = Some("example/web:v1".into());
        r
    }

    fn failed(mut r: WorkloadReport, cause: Cause, confirmed: bool) -> WorkloadReport {
        r.findings = vec![Finding {
            cause,
            summary: cause.title().to_string(),
            container: None,
            pods: String::new(),
            evidence: Vec::new(),
            per_pod: Vec::new(),
            logs: Vec::new(),
            fix: String::new(),
        }];
        r.rollback = Some(report::Rollback {
            attempted: true,
            confirmed,
            detail: "back".into(),
        });
        r
    }

    fn rolled_back(mut r: WorkloadReport) -> WorkloadReport {
        r.rollback = Some(report::Rollback {
            attempted: true,
            confirmed: true,
            detail: "back".into(),
        });
        r
    }

    #[test]
    fn a_group_failure_names_the_culprit_and_who_went_back_with_it() {
        let reps = vec![
            failed(
                rep("deployment/web", "example/web:v2"),
                Cause::CrashLoop,
                true,
            ),
            rolled_back(rep("deployment/worker", "example/web:v2")),
            rep("deployment/cron", "example/web:v2"),
        ];
        let mut report = Report::new(String::new());
        summarise(
            &mut report,
            reps,
            false,
            ExitCode::RolledBack,
            Conclusion::RolledBack,
        );
        let h = &report.headline;
        assert!(h.starts_with("deployment/web failed ("), "{h}");
        assert!(h.contains("and was rolled back"), "{h}");
        assert!(
            h.contains("deployment/worker rolled back with it (all-or-nothing)"),
            "{h}"
        );
        assert!(h.contains("deployment/cron not changed"), "{h}");
        assert!(!h.contains("NOT confirmed"), "{h}");
        // Same image everywhere: the top level says it once.
        assert_eq!(report.image.as_deref(), Some("example/web:v2"));
        // Findings are named by their workload.
        assert!(report.findings[0].summary.starts_with("deployment/web: "));
        let rb = report.rollback.unwrap();
        assert!(rb.attempted && rb.confirmed);
        assert_eq!(report.workloads.len(), 3);
    }

    #[test]
    fn an_unconfirmed_rollback_is_said_and_spoils_the_merge() {
        let reps = vec![
            failed(
                rep("deployment/web", "example/web:v2"),
                Cause::ImageNotFound,
                false,
            ),
            rolled_back(rep("statefulset/db", "example/db:v2")),
        ];
        let mut report = Report::new(String::new());
        summarise(
            &mut report,
            reps,
            false,
            ExitCode::RollbackFailed,
            Conclusion::Failed,
        );
        assert!(
            report.headline.contains("a rollback was NOT confirmed"),
            "{}",
            report.headline
        );
        assert_eq!(report.image, None, "different images are not merged");
        let rb = report.rollback.unwrap();
        assert!(!rb.confirmed);
        assert!(
            rb.detail
                .contains("deployment/web: back; statefulset/db: back"),
            "{}",
            rb.detail
        );
    }

    #[test]
    fn a_single_deployment_keeps_the_classic_report() {
        let mut r = rep("deployment/web", "example/web:v2");
        r.headline = "deployment/web rolled out example/web:v2".into();
        let mut report = Report::new(String::new());
        summarise(
            &mut report,
            vec![r],
            true,
            ExitCode::Success,
            Conclusion::Succeeded,
        );
        assert_eq!(report.headline, "deployment/web rolled out example/web:v2");
        assert_eq!(report.image.as_deref(), Some("example/web:v2"));
        assert!(report.workloads.is_empty());
    }

    #[test]
    fn a_group_success_counts_its_workloads() {
        let reps = vec![rep("deployment/a", "x:2"), rep("deployment/b", "x:2")];
        let mut report = Report::new(String::new());
        summarise(
            &mut report,
            reps,
            false,
            ExitCode::Success,
            Conclusion::Succeeded,
        );
        assert_eq!(report.headline, "2 workloads rolled out");
        assert!(report.rollback.is_none());
    }
}
