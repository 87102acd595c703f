//! The Markdown body shared by the GitHub step summary, the sticky PR
//! comment and the GitLab MR note. Most important first, each thing said
//! once: the heading (workload, verdict, cause), the facts a person acts on
//! (exposure, rollback, the state at the verdict, where the run came from),
//! each finding with its fix and its evidence in plain sight, the events,
//! the details table, and the chart of old vs new ready pods.
//!
//! (Over 500 lines with its unit tests: one renderer, tested on each part
//! of the body.)

use super::escape::{html_text, md_code, md_code_span, md_fence, md_text, truncate};
use super::timeline;
use super::{Conclusion, Report};

use super::story::heading_has_cause;
pub use super::story::{
    context_parts, duration_text, exposure_text, heading, is_failure, outcome, result_word,
    rollback_text,
};
pub use super::timeline::Sample;

/// GitHub's limit for an issue comment body (characters).
pub const COMMENT_LIMIT: usize = 65_536;
/// GitHub's limit for a step summary (bytes).
pub const SUMMARY_LIMIT: usize = 1024 * 1024;
/// GitLab's limit for a note body is 1 000 000 characters.
pub const GITLAB_NOTE_LIMIT: usize = 1_000_000;
/// One evidence message or log line is cut to this many bytes.
const ITEM_LIMIT: usize = 4_000;
/// The cause in the heading is cut to this many bytes (the finding then
/// says it in full).
const HEADING_CAUSE: usize = 300;

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

fn head(r: &Report, opts: &Options) -> String {
    let mut s = String::new();
    if let Some(m) = &opts.marker {
        s.push_str(m);
        s.push('\n');
    }
    let (icon, _) = outcome(r.result);
    s.push_str(&format!(
        "### {icon} {}\n\n",
        md_text(&heading(r, HEADING_CAUSE))
    ));
    let mut facts: Vec<String> = Vec::new();
    if let Some(e) = exposure_text(r) {
        facts.push(format!("**Exposure:** {}", md_text(&e)));
    }
    if let Some(rb) = rollback_text(r) {
        facts.push(format!(
            "**Rollback:** {}",
            md_text(&truncate(&rb, ITEM_LIMIT))
        ));
    }
    if let Some(p) = &r.progress
        && r.workloads.len() < 2
        && !p.name.is_empty()
    {
        let label = if is_failure(r.result) {
            "At the verdict"
        } else {
            "Progress"
        };
        // The counts only: what was still awaited is the cause's to say.
        facts.push(format!("**{label}:** {}", md_text(&p.line())));
    }
    let mut ctx: Vec<String> = context_parts(r)
        .into_iter()
        .map(|(k, v)| {
            if matches!(k, "PR" | "MR" | "by") {
                format!("{k} {}", md_text(&v))
            } else {
                format!("{k} {}", md_code_span(&v))
            }
        })
        .collect();
    if let Some(url) = &opts.job_url {
        ctx.push(format!("[CI job]({})", url_for_md(url)));
    }
    if !ctx.is_empty() {
        facts.push(format!("**Run:** {}", ctx.join(" · ")));
    }
    for f in facts {
        s.push_str(&format!("- {f}\n"));
    }
    if !s.ends_with("\n\n") {
        s.push('\n');
    }
    s
}

/// The details table: result, workload, container, images, version, revision.
fn details(r: &Report) -> String {
    let mut s = String::from("| | |\n|---|---|\n");
    let mut row = |k: &str, v: String| s.push_str(&format!("| {k} | {v} |\n"));
    row(
        "Result",
        format!(
            "{} (exit code {})",
            md_code(result_word(r.result)),
            r.exit_code
        ),
    );
    if !r.workload.is_empty() {
        row("Workload", md_code(&r.workload));
    }
    if let Some(c) = &r.container {
        row("Container", md_code(c));
    }
    let rolled_back = r
        .rollback
        .as_ref()
        .is_some_and(|b| b.attempted && b.confirmed);
    match (&r.previous_image, &r.image) {
        (Some(old), Some(new)) if rolled_back => row(
            "Image",
            format!("{} (serving) · attempted {}", md_code(old), md_code(new)),
        ),
        (Some(old), Some(new)) => row("Image", format!("{} → {}", md_code(old), md_code(new))),
        (None, Some(new)) => row("Image", md_code(new)),
        _ => {}
    }
    if let (Some(label), Some(v)) = (&r.version_label, &r.version) {
        row("Version", md_code(&format!("{label}={v}")));
    }
    match (&r.revision, &r.serving_revision) {
        (Some(rev), Some(now)) if rolled_back => row(
            "Revision",
            format!("{} (serving) · attempted {}", md_code(now), md_code(rev)),
        ),
        (Some(rev), _) => row("Revision", md_code(rev)),
        _ => {}
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
        String::from("| Workload | Result | Image | Why | Rollback |\n|---|---|---|---|---|\n");
    for w in &r.workloads {
        let image = match (&w.previous_image, &w.image) {
            (Some(old), Some(new)) => format!("{} → {}", md_code(old), md_code(new)),
            (None, Some(new)) => md_code(new),
            _ => String::new(),
        };
        let why = if !w.findings.is_empty() {
            format!("**failed**: {}", md_text(w.findings[0].cause.title()))
        } else if w.result == Conclusion::Succeeded {
            String::new()
        } else {
            md_text("rolled back with the group")
        };
        let rollback = match &w.rollback {
            Some(rb) if rb.attempted && rb.confirmed => "confirmed healthy".to_string(),
            Some(rb) if rb.attempted => "**NOT confirmed**".to_string(),
            Some(_) => "not rolled back".to_string(),
            None => String::new(),
        };
        s.push_str(&format!(
            "| {} | {} (exit {}) | {image} | {why} | {rollback} |\n",
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
/// a body that would be too long otherwise). `said` is true when the
/// heading already holds its summary.
fn finding(i: usize, f: &crate::model::Finding, compact: bool, said: bool) -> String {
    let f = &if compact {
        let mut c = f.clone();
        c.evidence = c
            .evidence
            .iter()
            .take(2)
            .map(|e| truncate(e, 500))
            .collect();
        c.per_pod.truncate(3);
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
        .map(|c| format!(", container {}", md_code_span(c)))
        .unwrap_or_default();
    s.push_str(&format!(
        "#### {}. {} ({}{container})\n\n",
        i + 1,
        md_text(f.cause.title()),
        md_text(&f.pods)
    ));
    if !said {
        s.push_str(&md_text(&truncate(&f.summary, ITEM_LIMIT)));
        s.push_str("\n\n");
    }
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
    // The evidence in plain sight: per pod when there are pods (their
    // names and messages), else the distinct messages.
    if !f.per_pod.is_empty() {
        s.push_str("**Evidence, per pod:**\n\n");
        s.push_str(&md_fence(&items(&f.per_pod), "text"));
        s.push('\n');
    } else if !f.evidence.is_empty() {
        s.push_str("**Evidence:**\n\n");
        s.push_str(&md_fence(&items(&f.evidence), "text"));
        s.push('\n');
    }
    if !f.logs.is_empty() {
        // The last lines in sight; a longer tail folded below them.
        const SHOWN: usize = 8;
        let split = f.logs.len().saturating_sub(SHOWN);
        s.push_str("**Last log lines of the previous instance:**\n\n");
        s.push_str(&md_fence(&items(&f.logs[split..]), "text"));
        s.push('\n');
        if split > 0 {
            s.push_str(&format!(
                "<details><summary>{}</summary>\n\n",
                html_text(&format!("{split} earlier log lines"))
            ));
            s.push_str(&md_fence(&items(&f.logs[..split]), "text"));
            s.push_str("\n</details>\n\n");
        }
    }
    s
}

/// The events worth showing: the report's (or each workload's, prefixed)
/// minus those whose message a finding already shows as evidence.
pub fn fresh_events(r: &Report) -> Vec<String> {
    let shown: Vec<&str> = r
        .findings
        .iter()
        .chain(r.workloads.iter().flat_map(|w| w.findings.iter()))
        .flat_map(|f| f.evidence.iter())
        .map(|e| e.trim())
        .filter(|e| e.len() >= 20)
        .collect();
    let mut lines: Vec<String> = r.events.clone();
    if lines.is_empty() {
        for w in &r.workloads {
            lines.extend(w.events.iter().map(|e| format!("[{}] {e}", w.workload)));
        }
    }
    lines.retain(|l| !shown.iter().any(|e| l.contains(e)));
    lines
}

/// The events excerpt of the failing workload(s).
fn events(r: &Report) -> String {
    let lines = fresh_events(r);
    if lines.is_empty() {
        return String::new();
    }
    let body = lines
        .iter()
        .map(|l| truncate(l, 600))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "**Events** (common success events excluded):\n\n{}\n",
        md_fence(&body, "text")
    )
}

/// Colours of the chart's lines: the old version, the new one.
const PALETTE: &str = "#0969da, #d1242f";

/// The chart of old vs new ready pods (Mermaid xychart), or a one-line
/// text timeline when the run was too short to show anything; empty when
/// there is no timeline. The x-axis ticks are evenly spaced and distinct;
/// the verdict's tick carries ✘ (or ✔), the ticks of the rollback ↩ and
/// the last one `end`; the legend is in the chart's title and above it.
pub fn chart(timeline: &[Sample], failed: bool, of: Option<&str>) -> String {
    if timeline.is_empty() {
        return String::new();
    }
    if !timeline::worth_a_chart(timeline) {
        let of = of
            .map(|w| format!(" of {}", md_code_span(w)))
            .unwrap_or_default();
        return format!(
            "**Timeline{of}:** {}\n\n",
            md_text(&timeline::text_line(timeline))
        );
    }
    let ticks = timeline::ticks(timeline, failed);
    let peak = ticks
        .iter()
        .map(|t| t.old_ready.max(t.new_ready))
        .max()
        .unwrap_or(0)
        .max(1);
    // Mermaid's axis asks for about ten ticks: below 8 it would draw
    // fractional pods (0.2, 0.5); from 8 on the steps are whole numbers.
    let top = peak.max(8);
    let rollback = ticks.iter().any(|t| t.rollback);
    let join =
        |f: &dyn Fn(&timeline::Tick) -> String| ticks.iter().map(f).collect::<Vec<_>>().join(", ");
    let mut legend = String::from("🟦 old version · 🟥 new version · ");
    legend.push_str(if failed { "✘ verdict" } else { "✔ verdict" });
    if rollback {
        legend.push_str(" · ↩ rolling back · end: rollback done");
    }
    format!(
        "**Ready pods{} over time** — {legend}\n\n\
         ```mermaid\n\
         ---\n\
         config:\n  \
           xyChart:\n    \
             width: 640\n    \
             height: 230\n    \
             titleFontSize: 14\n  \
           themeVariables:\n    \
             xyChart:\n      \
               plotColorPalette: \"{PALETTE}\"\n\
         ---\n\
         xychart-beta\n    \
         title \"Ready pods: blue = old version, red = new version\"\n    \
         x-axis \"time after the patch\" [{}]\n    \
         y-axis \"ready pods\" 0 --> {top}\n    \
         line [{}]\n    \
         line [{}]\n\
         ```\n\n",
        of.map(|w| format!(" of {}", md_code_span(w)))
            .unwrap_or_default(),
        join(&|t| format!("\"{}\"", t.label)),
        join(&|t| t.old_ready.to_string()),
        join(&|t| t.new_ready.to_string()),
    )
}

fn footer(r: &Report) -> String {
    let file = r
        .inputs
        .get("report-file")
        .map(|f| format!(" · full report in {}", md_code_span(f)))
        .unwrap_or_default();
    format!(
        "<sub>rollguard {}{file}</sub>\n",
        html_text(r.rollguard_version)
    )
}

/// The Markdown body, at most `opts.max_len` bytes. When too long, later
/// findings are shortened (a few short evidence and log lines), then
/// dropped with a note, then the chart and the events go; the marker is
/// always kept.
pub fn render(r: &Report, opts: &Options) -> String {
    let head = head(r, opts);
    let details = details(r);
    let chart = chart(&r.timeline, is_failure(r.result), r.timeline_of.as_deref());
    let events = events(r);
    let footer = footer(r);
    // Room for the "omitted" note.
    const NOTE: usize = 200;
    let mut body = String::new();
    let mut budget = opts
        .max_len
        .saturating_sub(head.len() + details.len() + footer.len() + NOTE);
    let mut omitted = 0;
    let said = heading_has_cause(r, HEADING_CAUSE);
    for (i, f) in r.findings.iter().enumerate() {
        if omitted > 0 {
            omitted += 1;
            continue;
        }
        let said = said && i == 0 && r.cause.as_deref() == Some(f.summary.as_str());
        let full = finding(i, f, false, said);
        let text = if full.len() <= budget {
            full
        } else {
            finding(i, f, true, said)
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
    let gate = super::analysis::markdown(r);
    if gate.len() <= budget {
        budget -= gate.len();
        s.push_str(&gate);
    }
    if events.len() <= budget {
        budget -= events.len();
        s.push_str(&events);
    }
    s.push_str(&details);
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
    use crate::model::{Mark, Phase};

    #[test]
    fn comment_is_cut_to_the_limit_keeping_the_marker() {
        use crate::model::{Cause, Finding};
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
    fn chart_has_distinct_ticks_a_verdict_and_whole_pods() {
        let mut t: Vec<Sample> = (0..100)
            .map(|i| Sample::new(i * 100, 3 - (i as i32 / 40), i as i32 / 40, 3))
            .collect();
        t[60].mark = Some(Mark::Verdict);
        for s in t.iter_mut().skip(61) {
            s.phase = Phase::Rollback;
        }
        t[99].mark = Some(Mark::RollbackEnd);
        let c = chart(&t, true, None);
        assert!(c.contains("```mermaid\n---\nconfig:"), "{c}");
        assert!(c.contains("xychart-beta"));
        assert!(c.contains(" ✘\""), "{c}");
        assert!(c.contains("↩"));
        assert!(c.contains("y-axis \"ready pods\" 0 --> 8"));
        let x = c.lines().find(|l| l.contains("x-axis")).unwrap();
        let labels: Vec<&str> = x.split('"').skip(3).step_by(2).collect();
        let mut uniq = labels.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), labels.len(), "{x}");
        assert!(chart(&[], true, None).is_empty());
        // Too short to draw: one line of text.
        let short = chart(&t[..2], true, None);
        assert!(short.starts_with("**Timeline:**"), "{short}");
    }
}
