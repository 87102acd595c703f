//! The human summary on stdout, written for a CI log read at 2 a.m.

use std::io::Write;

use super::{Conclusion, Report, Sink};

pub struct Console<'a> {
    pub out: &'a mut (dyn Write + Send),
}

/// The summary text.
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
        Conclusion::Failed | Conclusion::Invalid => "✘",
    };
    line(format!("{mark} {}", r.headline));
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
    if let Some(c) = &r.cause {
        line(format!("  cause: {c}"));
    }
    for f in &r.findings {
        line(String::new());
        let container = f
            .container
            .as_deref()
            .map(|c| format!(", container {c}"))
            .unwrap_or_default();
        line(format!("  ● {} ({}{container})", f.cause.title(), f.pods));
        for e in &f.evidence {
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
    if let Some(rb) = &r.rollback {
        line(String::new());
        let state = match (rb.attempted, rb.confirmed) {
            (true, true) => "rolled back, confirmed healthy",
            (true, false) => "rollback NOT confirmed",
            (false, _) => "not rolled back",
        };
        line(format!("  rollback: {state}: {}", rb.detail));
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
