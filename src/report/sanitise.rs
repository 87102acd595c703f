//! The report as the text sinks may show it: every string that came from
//! the cluster or the inputs cleaned of terminal controls and folded onto
//! one line ([`crate::text`]). Applied at the boundary of the console,
//! GitHub (annotation, outputs, step summary, comment), GitLab and Slack
//! sinks; the JSON report file keeps the raw text (JSON escapes it).

use serde_json::Value;

use super::{Report, Rollback, WorkloadReport};
use crate::model::Finding;
use crate::text::one_line;

fn opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(one_line)
}

fn all(v: &[String]) -> Vec<String> {
    v.iter().map(|s| one_line(s)).collect()
}

fn finding(f: &Finding) -> Finding {
    Finding {
        cause: f.cause,
        summary: one_line(&f.summary),
        container: opt(&f.container),
        pods: one_line(&f.pods),
        evidence: all(&f.evidence),
        per_pod: all(&f.per_pod),
        logs: all(&f.logs),
        fix: one_line(&f.fix),
    }
}

fn rollback(r: &Option<Rollback>) -> Option<Rollback> {
    r.as_ref().map(|r| Rollback {
        attempted: r.attempted,
        confirmed: r.confirmed,
        detail: one_line(&r.detail),
    })
}

/// Strings inside a JSON value, cleaned (line structure kept: JSON escapes it).
fn value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(crate::text::clean(s)),
        Value::Array(a) => Value::Array(a.iter().map(value).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (crate::text::clean(k), value(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The gate's query (as sent) and failure text: one line each.
fn analysis(a: &crate::analysis::Summary) -> crate::analysis::Summary {
    let mut a = a.clone();
    a.query = one_line(&a.query);
    a.condition = one_line(&a.condition);
    for e in &mut a.evaluations {
        e.time = one_line(&e.time);
    }
    if let Some(f) = &mut a.failure {
        f.message = one_line(&f.message);
        f.time = one_line(&f.time);
    }
    a
}

fn workload(w: &WorkloadReport) -> WorkloadReport {
    WorkloadReport {
        workload: one_line(&w.workload),
        result: w.result,
        exit_code: w.exit_code,
        headline: one_line(&w.headline),
        container: opt(&w.container),
        previous_image: opt(&w.previous_image),
        image: opt(&w.image),
        version: opt(&w.version),
        cause: opt(&w.cause),
        findings: w.findings.iter().map(finding).collect(),
        rollback: rollback(&w.rollback),
        progress: w.progress.clone().map(|mut p| {
            p.name = one_line(&p.name);
            p.waiting_for = one_line(&p.waiting_for);
            p
        }),
        stability: opt(&w.stability),
        canary: opt(&w.canary),
        revision: opt(&w.revision),
        patch: w.patch.as_ref().map(value),
        previous_template: w.previous_template.as_ref().map(value),
        notes: all(&w.notes),
        events: all(&w.events),
        serving_revision: opt(&w.serving_revision),
        analysis: w.analysis.as_ref().map(analysis),
    }
}

/// The report with every string made safe for a text sink.
pub fn report(r: &Report) -> Report {
    Report {
        rollguard_version: r.rollguard_version,
        result: r.result,
        exit_code: r.exit_code,
        headline: one_line(&r.headline),
        workload: one_line(&r.workload),
        namespace: opt(&r.namespace),
        container: opt(&r.container),
        previous_image: opt(&r.previous_image),
        image: opt(&r.image),
        version_label: opt(&r.version_label),
        version: opt(&r.version),
        started_at: one_line(&r.started_at),
        finished_at: one_line(&r.finished_at),
        cause: opt(&r.cause),
        findings: r.findings.iter().map(finding).collect(),
        rollback: rollback(&r.rollback),
        progress: r.progress.clone().map(|mut p| {
            p.name = one_line(&p.name);
            p.waiting_for = one_line(&p.waiting_for);
            p
        }),
        stability: opt(&r.stability),
        canary: opt(&r.canary),
        revision: opt(&r.revision),
        inputs: r
            .inputs
            .iter()
            .map(|(k, v)| (one_line(k), one_line(v)))
            .collect(),
        patch: r.patch.as_ref().map(value),
        previous_template: r.previous_template.as_ref().map(value),
        timeline: r.timeline.clone(),
        timeline_of: opt(&r.timeline_of),
        serving_revision: opt(&r.serving_revision),
        events: all(&r.events),
        context: crate::report::RunContext {
            repository: opt(&r.context.repository),
            change: opt(&r.context.change),
            commit: opt(&r.context.commit),
            actor: opt(&r.context.actor),
            cluster: opt(&r.context.cluster),
        },
        workloads: r.workloads.iter().map(workload).collect(),
        analysis: r.analysis.as_ref().map(analysis),
    }
}
