//! The human summary on stdout, written for a CI log read at 2 a.m.

use std::io::Write;

use super::{Conclusion, Report, Sink, markdown};

pub struct Console<'a> {
    pub out: &'a mut (dyn Write + Send),
}

/// The summary text: the heading (workload, verdict, cause) once, then
/// what a person acts on.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(String::new());
    let mark = match r.result {
        Conclusion::Succeeded => "✔",
        Conclusion::DryRun => "○",
        Conclusion::RolledBack => "✘",
        Conclusion::Failed | Conclusion::Invalid | Conclusion::Blocked => "✘",
    };
    let heading = markdown::heading(r, usize::MAX);
    // Bad input and pre-flight refusals were said by the one-line error
    // (`rollguard: …`) just before: only the verdict here.
    let short = match r.result {
        Conclusion::Invalid | Conclusion::Blocked => {
            let (_, word) = markdown::outcome(r.result);
            format!("{} {word}", r.workload).trim().to_string()
        }
        // The run's own words (`… rolled out IMAGE (label=version)`).
        Conclusion::Succeeded if !r.headline.is_empty() => r.headline.clone(),
        _ => heading.clone(),
    };
    line(format!("{mark} {short}"));
    if let (Some(old), Some(new)) = (&r.previous_image, &r.image) {
        let ns = r.namespace.as_deref().unwrap_or("");
        let container = r
            .container
            .as_deref()
            .map(|c| format!(" container {c}"))
            .unwrap_or_default();
        line(format!(
            "  {} in {ns}{container}: {old} → {new}",
            r.workload
        ));
    }
    if let (Some(label), Some(v)) = (&r.version_label, &r.version) {
        line(format!("  version label: {label}={v}"));
    }
    if let Some(st) = &r.stability {
        line(format!("  stable: {st}"));
    }
    if let Some(e) = markdown::exposure_text(r) {
        line(format!("  exposure: {e}"));
    }
    for f in &r.findings {
        line(String::new());
        let container = f
            .container
            .as_deref()
            .map(|c| format!(", container {c}"))
            .unwrap_or_default();
        line(format!("  ● {} ({}{container})", f.cause.title(), f.pods));
        if !heading.contains(&f.summary) {
            line(format!("    {}", f.summary));
        }
        let evidence = if f.per_pod.is_empty() {
            &f.evidence
        } else {
            &f.per_pod
        };
        for e in evidence {
            line(format!("    evidence: {e}"));
        }
        if !f.logs.is_empty() {
            line("    last log lines of the previous instance:".into());
            for l in &f.logs {
                line(format!("      | {l}"));
            }
        }
        line(format!("    fix: {}", f.fix));
    }
    let gate = super::analysis::console_lines(r);
    if !gate.is_empty() {
        line(String::new());
        gate.into_iter().for_each(&mut line);
    }
    let events = markdown::fresh_events(r);
    if !events.is_empty() {
        line(String::new());
        line("  events (common success events excluded):".into());
        for e in &events {
            line(format!("    {e}"));
        }
    }
    if let Some(rb) = markdown::rollback_text(r) {
        line(String::new());
        line(format!("  rollback: {rb}"));
    }
    line(format!("  exit code {}", r.exit_code));
    s
}

impl Sink for Console<'_> {
    fn name(&self) -> &'static str {
        "console"
    }

    fn emit(&mut self, report: &Report) -> anyhow::Result<()> {
        // Cluster text (messages, log lines) is in the summary: keep it from
        // issuing workflow commands on a CI runner.
        let text = super::escape::neutralise_commands(&render(&super::sanitise::report(report)));
        self.out.write_all(text.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}
