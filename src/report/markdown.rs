//! The Markdown body shared by the GitHub step summary, the sticky PR
//! comment and the GitLab MR note: outcome, a table for the workload, each
//! finding with its evidence in a `<details>` block, and a Mermaid chart of
//! old vs new ready pods over the rollout's time.

use serde::Serialize;

use super::escape::{html_text, md_code, md_fence, md_text, truncate};
use super::{Conclusion, Report};

/// One point of the rollout's timeline: ready pods of the old ReplicaSets
/// and of the new one, `seconds` after the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub seconds: u64,
    pub old_ready: i32,
    pub new_ready: i32,
}

/// GitHub's limit for an issue comment body (characters).
pub const COMMENT_LIMIT: usize = 65_536;
/// GitHub's limit for a step summary (bytes).
pub const SUMMARY_LIMIT: usize = 1024 * 1024;
/// GitLab's limit for a note body is 1 000 000 characters.
pub const GITLAB_NOTE_LIMIT: usize = 1_000_000;
/// One evidence message or log line is cut to this many bytes.
const ITEM_LIMIT: usize = 4_000;
/// Most points drawn in the chart.
const CHART_POINTS: usize = 40;

/// How to render one body.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hidden sticky-comment marker, first line of the body.
    pub marker: Option<String>,
    /// Longest body, in bytes (≤ characters, so safe for both limits).
    pub max_len: usize,
    /// Link to the CI job.
    pub job_url: Option<String>,
}

/// The hidden marker for this namespace/workload:
/// `<!-- rollguard:NAMESPACE/WORKLOAD -->`.
pub fn marker(report: &Report) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
            .collect::<String>()
            .replace("--", "-")
    };
    let ns = clean(report.namespace.as_deref().unwrap_or("default"));
    format!("<!-- rollguard:{ns}/{} -->", clean(&report.workload))
}

/// The CI job's URL from the environment, if any.
pub fn job_url(env: &crate::config::Env) -> Option<String> {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
    if let (Some(server), Some(repo), Some(run)) = (
        get("GITHUB_SERVER_URL"),
        get("GITHUB_REPOSITORY"),
        get("GITHUB_RUN_ID"),
    ) {
        return Some(format!("{server}/{repo}/actions/runs/{run}"));
    }
    get("CI_JOB_URL").cloned()
}

/// The one-word result (GitHub's `result` output; a dry run that passed
/// its checks counts as `succeeded`).
pub fn result_word(c: Conclusion) -> &'static str {
    match c {
        Conclusion::Succeeded | Conclusion::DryRun => "succeeded",
        Conclusion::RolledBack => "rolled-back",
        Conclusion::Failed => "failed",
        Conclusion::Invalid => "invalid",
    }
}

/// Emoji and words for the outcome.
pub fn outcome(c: Conclusion) -> (&'static str, &'static str) {
    match c {
        Conclusion::Succeeded => ("✅", "deployed"),
        Conclusion::DryRun => ("🔍", "dry run"),
        Conclusion::RolledBack => ("↩️", "failed and rolled back"),
        Conclusion::Failed => ("❌", "failed"),
        Conclusion::Invalid => ("⚠️", "invalid input"),
    }
}

/// Is this outcome a failure (for `slack-on: failure` and annotations)?
pub fn is_failure(c: Conclusion) -> bool {
    matches!(
        c,
        Conclusion::RolledBack | Conclusion::Failed | Conclusion::Invalid
    )
}

fn head(r: &Report, opts: &Options) -> String {
    let mut s = String::new();
    if let Some(m) = &opts.marker {
        s.push_str(m);
        s.push('\n');
    }
    let (icon, word) = outcome(r.result);
    s.push_str(&format!(
        "### {icon} rollguard: {} {word}\n\n",
        md_code(&r.workload)
    ));
    if !r.headline.is_empty() {
        s.push_str(&md_text(&truncate(&r.headline, ITEM_LIMIT)));
        s.push_str("\n\n");
    }
    s.push_str("| | |\n|---|---|\n");
    let mut row = |k: &str, v: String| s.push_str(&format!("| {k} | {v} |\n"));
    row(
        "Result",
        format!(
            "{} (exit code {})",
            md_code(result_word(r.result)),
            r.exit_code
        ),
    );
    let ns = r
        .namespace
        .as_deref()
        .map(|n| format!(" in namespace {}", md_code(n)))
        .unwrap_or_default();
    row("Workload", format!("{}{ns}", md_code(&r.workload)));
    if let Some(c) = &r.container {
        row("Container", md_code(c));
    }
    match (&r.previous_image, &r.image) {
        (Some(old), Some(new)) => row("Image", format!("{} → {}", md_code(old), md_code(new))),
        (None, Some(new)) => row("Image", md_code(new)),
        _ => {}
    }
    if let (Some(label), Some(v)) = (&r.version_label, &r.version) {
        row("Version", md_code(&format!("{label}={v}")));
    }
    if let Some(rev) = &r.revision {
        row("Revision", md_code(rev));
    }
    if let Some(p) = &r.progress {
        row("Progress", md_code(&p.line()));
        if !p.waiting_for.is_empty() {
            row("Waiting for", md_text(&p.waiting_for));
        }
    }
    if let Some(c) = &r.cause {
        row("Cause", md_text(&truncate(c, ITEM_LIMIT)));
    }
    if let Some(rb) = &r.rollback {
        let state = match (rb.attempted, rb.confirmed) {
            (true, true) => "rolled back, confirmed healthy",
            (true, false) => "**rollback NOT confirmed**",
            (false, _) => "not rolled back",
        };
        let detail = if rb.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", md_text(&truncate(&rb.detail, ITEM_LIMIT)))
        };
        row("Rollback", format!("{state}{detail}"));
    }
    if !r.finished_at.is_empty() {
        row(
            "Time",
            format!("{} → {}", md_code(&r.started_at), md_code(&r.finished_at)),
        );
    }
    if let Some(url) = &opts.job_url {
        row(
            "CI job",
            format!("[{}]({})", md_text("logs"), url_for_md(url)),
        );
    }
    s.push('\n');
    s.push_str(&group_table(r));
    s
}

/// One row per workload when a run covered several (all-or-nothing groups).
fn group_table(r: &Report) -> String {
    if r.workloads.len() < 2 {
        return String::new();
    }
    let mut s =
        String::from("| Workload | Result | Image | Cause | Rollback |\n|---|---|---|---|---|\n");
    for w in &r.workloads {
        let image = match (&w.previous_image, &w.image) {
            (Some(old), Some(new)) => format!("{} → {}", md_code(old), md_code(new)),
            (None, Some(new)) => md_code(new),
            _ => String::new(),
        };
        let cause = w
            .cause
            .as_deref()
            .map(|c| md_text(&truncate(c, 300)))
            .unwrap_or_default();
        let rollback = match &w.rollback {
            Some(rb) if rb.attempted && rb.confirmed => "confirmed healthy".to_string(),
            Some(rb) if rb.attempted => "**NOT confirmed**".to_string(),
            Some(_) => "not rolled back".to_string(),
            None => String::new(),
        };
        s.push_str(&format!(
            "| {} | {} (exit {}) | {image} | {cause} | {rollback} |\n",
            md_code(&w.workload),
            md_code(result_word(w.result)),
            w.exit_code,
        ));
    }
    s.push('\n');
    s
}

/// A URL in a Markdown link target: no spaces, parentheses or angle brackets.
fn url_for_md(u: &str) -> String {
    u.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | '<' | '>' | '"'))
        .collect()
}

/// A finding; `compact` keeps a few short evidence and log lines only (for
/// a body that would be too long otherwise).
fn finding(i: usize, f: &crate::diagnose::Finding, compact: bool) -> String {
    let f = &if compact {
        let mut c = f.clone();
        c.evidence = c
            .evidence
            .iter()
            .take(2)
            .map(|e| truncate(e, 500))
            .collect();
        c.per_pod.clear();
        let skip = c.logs.len().saturating_sub(5);
        c.logs = c.logs.iter().skip(skip).map(|l| truncate(l, 300)).collect();
        c
    } else {
        f.clone()
    };
    let mut s = String::new();
    let container = f
        .container
        .as_deref()
        .map(|c| format!(", container {}", md_code(c)))
        .unwrap_or_default();
    s.push_str(&format!(
        "#### {}. {} ({}{container})\n\n",
        i + 1,
        md_text(f.cause.title()),
        md_text(&f.pods)
    ));
    s.push_str(&md_text(&truncate(&f.summary, ITEM_LIMIT)));
    s.push_str("\n\n");
    s.push_str(&format!(
        "**Fix:** {}\n\n",
        md_text(&truncate(&f.fix, ITEM_LIMIT))
    ));
    let items = |v: &[String]| {
        v.iter()
            .map(|l| truncate(l, ITEM_LIMIT))
            .collect::<Vec<_>>()
            .join("\n")
    };
    s.push_str(&format!(
        "<details><summary>{}</summary>\n\n",
        html_text(&format!(
            "Evidence ({} message{})",
            f.evidence.len(),
            if f.evidence.len() == 1 { "" } else { "s" }
        ))
    ));
    if !f.evidence.is_empty() {
        s.push_str(&md_fence(&items(&f.evidence), "text"));
        s.push('\n');
    }
    if !f.per_pod.is_empty() {
        s.push_str("Per pod:\n\n");
        s.push_str(&md_fence(&items(&f.per_pod), "text"));
        s.push('\n');
    }
    if !f.logs.is_empty() {
        s.push_str("Last log lines of the previous instance:\n\n");
        s.push_str(&md_fence(&items(&f.logs), "text"));
        s.push('\n');
    }
    s.push_str("</details>\n\n");
    s
}

/// Mermaid chart of old vs new ready pods; empty when there is no timeline.
pub fn chart(timeline: &[Sample]) -> String {
    if timeline.is_empty() {
        return String::new();
    }
    let step = timeline.len().div_ceil(CHART_POINTS).max(1);
    let mut points: Vec<Sample> = timeline.iter().step_by(step).copied().collect();
    if let Some(last) = timeline.last()
        && points.last() != Some(last)
    {
        points.push(*last);
    }
    let max = points
        .iter()
        .map(|p| p.old_ready.max(p.new_ready))
        .max()
        .unwrap_or(0)
        .max(1);
    let join = |f: &dyn Fn(&Sample) -> String| points.iter().map(f).collect::<Vec<_>>().join(", ");
    format!(
        "#### Ready pods during the rollout\n\n\
         Old ReplicaSets: first line; new ReplicaSet: second line.\n\n\
         ```mermaid\n\
         xychart-beta\n    \
         title \"Ready pods (old vs new)\"\n    \
         x-axis \"seconds after the patch\" [{}]\n    \
         y-axis \"ready pods\" 0 --> {max}\n    \
         line [{}]\n    \
         line [{}]\n\
         ```\n\n",
        join(&|p| p.seconds.to_string()),
        join(&|p| p.old_ready.to_string()),
        join(&|p| p.new_ready.to_string()),
    )
}

fn footer(r: &Report) -> String {
    let file = r
        .inputs
        .get("report-file")
        .map(|f| format!(" · full report in {}", md_code(f)))
        .unwrap_or_default();
    format!(
        "<sub>rollguard {}{file}</sub>\n",
        html_text(r.rollguard_version)
    )
}

/// The Markdown body, at most `opts.max_len` bytes. When too long, later
/// findings are shortened (a few short evidence and log lines), then
/// dropped with a note, then the chart goes; the marker is always kept.
pub fn render(r: &Report, opts: &Options) -> String {
    let head = head(r, opts);
    let chart = chart(&r.timeline);
    let footer = footer(r);
    // Room for the "omitted" note.
    const NOTE: usize = 200;
    let mut body = String::new();
    let mut budget = opts
        .max_len
        .saturating_sub(head.len() + footer.len() + NOTE);
    let mut omitted = 0;
    for (i, f) in r.findings.iter().enumerate() {
        if omitted > 0 {
            omitted += 1;
            continue;
        }
        let full = finding(i, f, false);
        let text = if full.len() <= budget {
            full
        } else {
            finding(i, f, true)
        };
        if text.len() <= budget {
            budget -= text.len();
            body.push_str(&text);
        } else {
            omitted += 1;
        }
    }
    let mut s = head;
    s.push_str(&body);
    if omitted > 0 {
        s.push_str(&format!(
            "_{omitted} more finding{} omitted to fit the size limit; see the job log or the report file._\n\n",
            if omitted == 1 { "" } else { "s" }
        ));
    }
    if chart.len() <= budget {
        s.push_str(&chart);
    }
    s.push_str(&footer);
    if s.len() <= opts.max_len {
        return s;
    }
    // Even the head is too long: cut it, keeping the marker line intact.
    truncate(
        &s,
        opts.max_len
            .max(opts.marker.as_ref().map_or(0, |m| m.len() + 4)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_is_cut_to_the_limit_keeping_the_marker() {
        use crate::diagnose::{Cause, Finding};
        let mut r = Report::new("t0".into());
        r.workload = "deployment/api".into();
        r.namespace = Some("shop".into());
        r.result = Conclusion::RolledBack;
        for i in 0..40 {
            r.findings.push(Finding {
                cause: Cause::CrashLoop,
                summary: format!("finding {i}"),
                container: Some("api".into()),
                pods: "3/3 new pods".into(),
                evidence: vec!["x".repeat(3_000); 2],
                per_pod: vec![],
                logs: vec!["y".repeat(3_000); 20],
                fix: "fix".into(),
            });
        }
        let opts = Options {
            marker: Some(marker(&r)),
            max_len: COMMENT_LIMIT,
            job_url: None,
        };
        let body = render(&r, &opts);
        assert!(body.chars().count() <= COMMENT_LIMIT);
        assert!(body.starts_with("<!-- rollguard:shop/deployment/api -->\n"));
        assert!(body.contains("more findings omitted"));
        assert!(body.contains("#### 1. container keeps crashing"));
        assert_eq!(
            body.matches("<details>").count(),
            body.matches("</details>").count()
        );
        // Tiny limit: still the marker.
        let tiny = render(
            &r,
            &Options {
                max_len: 10,
                ..opts
            },
        );
        assert!(tiny.starts_with("<!-- rollguard:shop/deployment/api -->"));
    }

    #[test]
    fn chart_is_downsampled_and_keeps_last_point() {
        let t: Vec<Sample> = (0..100)
            .map(|i| Sample {
                seconds: i,
                old_ready: 3 - (i as i32 / 40),
                new_ready: i as i32 / 40,
            })
            .collect();
        let c = chart(&t);
        assert!(c.contains("```mermaid\nxychart-beta"));
        assert!(c.contains(", 99]"));
        assert!(chart(&[]).is_empty());
    }
}
