//! The metric gate in the sinks: the query as sent, the condition and every
//! evaluation (time, value, pass / fail / no data), for the console
//! summary, the Markdown summary and comments (a table), and Slack. The
//! JSON report carries [`crate::analysis::Summary`] as it is.

use super::Report;
use super::escape::{md_code, md_code_span, md_text, slack_code, slack_text};
use crate::analysis::{Outcome, Summary, limit_text, show_value};

/// Rows of the Markdown table at most (the latest kept).
const TABLE_ROWS: usize = 30;
/// Evaluations listed in Slack at most (the latest kept).
const SLACK_ROWS: usize = 10;

/// Every gate of the run: (workload, when the run has several; summary).
pub fn gates(r: &Report) -> Vec<(Option<&str>, &Summary)> {
    if let Some(a) = &r.analysis {
        return vec![(None, a)];
    }
    r.workloads
        .iter()
        .filter_map(|w| Some((Some(w.workload.as_str()), w.analysis.as_ref()?)))
        .collect()
}

/// `passed (3 evaluations: 3 pass)` and the like.
pub fn verdict(a: &Summary) -> String {
    let count = |o: Outcome| a.evaluations.iter().filter(|e| e.outcome == o).count();
    let n = a.evaluations.len();
    let tally = format!(
        "{n} evaluation{}: {} pass, {} fail, {} no data",
        if n == 1 { "" } else { "s" },
        count(Outcome::Pass),
        count(Outcome::Fail),
        count(Outcome::NoData)
    );
    match &a.failure {
        Some(_) => format!("failed ({tally})"),
        None => format!("passed ({tally})"),
    }
}

fn value(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), show_value)
}

/// Console summary lines (already indented).
pub fn console_lines(r: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for (w, a) in gates(r) {
        let of = w.map(|w| format!(" of {w}")).unwrap_or_default();
        lines.push(format!("  metric gate{of}: {}", verdict(a)));
        lines.push(format!("    query: {}", a.query));
        lines.push(format!(
            "    condition: {} (every {}; {})",
            a.condition,
            a.interval,
            limit_text(a.failure_limit)
        ));
        for e in &a.evaluations {
            lines.push(format!(
                "    {}  {:>10}  {}",
                e.time,
                value(e.value),
                e.outcome.word()
            ));
        }
    }
    lines
}

/// The Markdown section: query, condition, and a table of evaluations.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    for (w, a) in gates(r) {
        let of = w
            .map(|w| format!(" of {}", md_code_span(w)))
            .unwrap_or_default();
        s.push_str(&format!(
            "**Metric gate{of}:** {} — condition {} every {}; {}\n\n",
            md_text(&verdict(a)),
            md_code_span(&a.condition),
            md_text(&a.interval),
            limit_text(a.failure_limit)
        ));
        s.push_str(&super::escape::md_fence(&a.query, "promql"));
        s.push('\n');
        if a.evaluations.is_empty() {
            s.push_str("_No evaluation ran._\n\n");
            continue;
        }
        s.push_str("| time | value | result |\n|---|---:|---|\n");
        let skip = a.evaluations.len().saturating_sub(TABLE_ROWS);
        if skip > 0 {
            s.push_str(&format!("| _{skip} earlier evaluations omitted_ | | |\n"));
        }
        for e in a.evaluations.iter().skip(skip) {
            let result = match e.outcome {
                Outcome::Pass => "✅ pass",
                Outcome::Fail => "❌ fail",
                Outcome::NoData => "… no data",
            };
            s.push_str(&format!(
                "| {} | {} | {result} |\n",
                md_code(&e.time),
                md_code(&value(e.value))
            ));
        }
        s.push('\n');
    }
    s
}

/// The Slack section text (mrkdwn), when the run had a gate.
pub fn slack(r: &Report) -> Option<String> {
    let gates = gates(r);
    if gates.is_empty() {
        return None;
    }
    let mut s = String::new();
    for (w, a) in gates {
        let of = w
            .map(|w| format!(" of {}", slack_text(w)))
            .unwrap_or_default();
        let skip = a.evaluations.len().saturating_sub(SLACK_ROWS);
        let rows: Vec<String> = a
            .evaluations
            .iter()
            .skip(skip)
            .map(|e| format!("{}  {:>10}  {}", e.time, value(e.value), e.outcome.word()))
            .collect();
        s.push_str(&format!(
            "*Metric gate{of}:* {} — condition {}\n```{}```\n",
            slack_text(&verdict(a)),
            slack_text(&a.condition),
            slack_code(&a.query)
        ));
        if !rows.is_empty() {
            s.push_str(&format!("```{}```\n", slack_code(&rows.join("\n"))));
        }
    }
    Some(super::escape::truncate_chars(&s, 2900))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Evaluation, Failure, FailureKind};

    fn report() -> Report {
        let mut r = Report::new("t0".into());
        r.analysis = Some(Summary {
            query: "sum(x{v=\"`<!channel>` | ::error::boom\"})".into(),
            condition: "< 0.05".into(),
            interval: "2s".into(),
            failure_limit: 1,
            evaluations: vec![
                Evaluation {
                    time: "2026-01-01T00:00:02Z".into(),
                    value: None,
                    outcome: Outcome::NoData,
                },
                Evaluation {
                    time: "2026-01-01T00:00:04Z".into(),
                    value: Some(0.2),
                    outcome: Outcome::Fail,
                },
            ],
            failure: Some(Failure {
                kind: FailureKind::Threshold,
                message: "metric gate: 0.2 is not < 0.05".into(),
                value: Some(0.2),
                time: "2026-01-01T00:00:04Z".into(),
            }),
        });
        r
    }

    #[test]
    fn every_sink_shows_the_evaluations_with_the_query_inert() {
        let r = report();
        let md = markdown(&r);
        assert!(
            md.contains("| `2026-01-01T00:00:04Z` | `0.2` | ❌ fail |"),
            "{md}"
        );
        assert!(md.contains("… no data"), "{md}");
        assert!(
            md.contains("failed (2 evaluations: 0 pass, 1 fail, 1 no data)"),
            "{md}"
        );
        // The query sits in a fence: nothing in it renders or runs.
        assert!(md.contains("```promql\n"), "{md}");
        assert!(
            !md.lines().any(|l| l.trim_start().starts_with("::")),
            "{md}"
        );
        let console = console_lines(&r).join("\n");
        assert!(
            console.contains("0.2") && console.contains("no data"),
            "{console}"
        );
        let text = slack(&r).unwrap();
        assert!(
            !text.contains("<!channel>") && text.contains("&lt;!channel&gt;"),
            "{text}"
        );
        assert!(text.contains("fail"), "{text}");
        assert!(slack(&Report::new("t0".into())).is_none());
    }
}
