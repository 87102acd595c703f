//! The story of a run in plain text, which every sink tells the same way
//! and says once: the one-word result, the heading (workload, verdict,
//! cause), the exposure, the rollback, the duration and where the run came
//! from.

use super::escape::truncate;
use super::timeline::{self, Exposure, human_ms};
use super::{Conclusion, Report};

/// The one-word result (GitHub's `result` output; a dry run that passed
/// its checks counts as `succeeded`).
pub fn result_word(c: Conclusion) -> &'static str {
    match c {
        Conclusion::Succeeded | Conclusion::DryRun => "succeeded",
        Conclusion::RolledBack => "rolled-back",
        Conclusion::Failed => "failed",
        Conclusion::Invalid => "invalid",
        Conclusion::Blocked => "blocked",
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
        Conclusion::Blocked => ("⛔", "blocked by pre-flight"),
    }
}

/// Is this outcome a failure (for `slack-on: failure` and annotations)?
pub fn is_failure(c: Conclusion) -> bool {
    matches!(
        c,
        Conclusion::RolledBack | Conclusion::Failed | Conclusion::Invalid | Conclusion::Blocked
    )
}

/// The heading in plain text: workload, verdict and cause (or what was
/// deployed). `cause_max` cuts a long cause.
pub fn heading(r: &Report, cause_max: usize) -> String {
    let (_, word) = outcome(r.result);
    if r.workloads.len() > 1 && is_failure(r.result) && !r.headline.is_empty() {
        // The group's headline names who failed and who was rolled back
        // because of it.
        return truncate(&r.headline, cause_max.max(200));
    }
    match r.result {
        Conclusion::Succeeded => match &r.image {
            Some(img) if r.workloads.len() < 2 => format!("{} deployed {img}", r.workload),
            _ => format!("{} {word}", r.workload),
        },
        Conclusion::Blocked => {
            let why = r.cause.as_deref().unwrap_or("a pre-flight check failed");
            format!(
                "{} {word}: {}; nothing changed",
                r.workload,
                truncate(why, cause_max)
            )
        }
        Conclusion::Invalid => {
            let why = r
                .headline
                .strip_prefix("invalid input: ")
                .unwrap_or(&r.headline);
            if r.workload.is_empty() {
                format!("{word}: {}", truncate(why, cause_max))
            } else {
                format!("{} {word}: {}", r.workload, truncate(why, cause_max))
            }
        }
        // A cancelled run: its headline says by what, and what became of it.
        _ if r
            .cause
            .as_deref()
            .is_some_and(|c| c.starts_with("cancelled"))
            && !r.headline.is_empty() =>
        {
            truncate(&r.headline, cause_max.max(200))
        }
        _ => match r.cause.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => format!("{} {word}: {}", r.workload, truncate(c, cause_max)),
            None if !r.headline.is_empty() => truncate(&r.headline, cause_max),
            None => format!("{} {word}", r.workload),
        },
    }
}

/// Does the heading hold the whole cause (so the first finding need not
/// say it again)?
pub(super) fn heading_has_cause(r: &Report, cause_max: usize) -> bool {
    r.workloads.len() < 2 && r.cause.as_ref().is_some_and(|c| c.len() <= cause_max)
}

/// The exposure sentence: how low availability went and for how long, how
/// long the new version served before failing. None without a timeline.
pub fn exposure_text(r: &Report) -> Option<String> {
    if r.timeline.is_empty() {
        return r.canary.clone();
    }
    let e: Exposure = timeline::exposure(&r.timeline);
    let desired = r
        .progress
        .as_ref()
        .map(|p| p.desired)
        .filter(|d| *d > 0)
        .or_else(|| r.timeline.first().map(|s| s.old_ready + s.new_ready))
        .unwrap_or(0);
    let mut parts = Vec::new();
    if let Some((low, for_ms)) = e.lowest_available {
        if low >= desired {
            parts.push(format!(
                "availability never dropped below {desired}/{desired}"
            ));
        } else {
            parts.push(format!(
                "lowest available {low}/{desired} for {}",
                human_ms(for_ms)
            ));
        }
    }
    if is_failure(r.result) {
        if e.new_peak > 0 {
            parts.push(format!(
                "the new version had up to {}/{desired} pods ready for {} before the verdict",
                e.new_peak,
                human_ms(e.new_served)
            ));
        } else {
            parts.push("no new pod ever became ready".to_string());
        }
        if let (Some(done), Some(v)) = (e.completed_after, e.verdict_after)
            && v > done
        {
            parts.push(format!(
                "failed during the bake, {} after the rollout completed",
                human_ms(v - done)
            ));
        }
    } else if let Some(v) = e.verdict_after {
        parts.push(format!("verdict {} after the patch", human_ms(v)));
    }
    let of = r
        .timeline_of
        .as_ref()
        .map(|w| format!("{w}: "))
        .unwrap_or_default();
    if let Some(c) = &r.canary {
        parts.insert(0, c.clone());
    }
    (!parts.is_empty()).then(|| format!("{of}{}", parts.join("; ")))
}

/// The rollback in one sentence.
pub fn rollback_text(r: &Report) -> Option<String> {
    let rb = r.rollback.as_ref()?;
    let took = timeline::exposure(&r.timeline)
        .rollback_took
        .map(|ms| format!(" in {}", human_ms(ms)))
        .unwrap_or_default();
    let state = match (rb.attempted, rb.confirmed) {
        (true, true) => format!("confirmed healthy{took}"),
        (true, false) => "NOT confirmed".to_string(),
        (false, _) => "not rolled back".to_string(),
    };
    let revision = r
        .serving_revision
        .as_ref()
        .filter(|_| rb.attempted && rb.confirmed)
        .map(|v| format!(", now revision {v}"))
        .unwrap_or_default();
    Some(if rb.detail.is_empty() {
        format!("{state}{revision}")
    } else {
        format!("{state}{revision}: {}", rb.detail)
    })
}

/// The run's length, from the report's stamps.
pub fn duration_text(r: &Report) -> Option<String> {
    let a: jiff::Timestamp = r.started_at.parse().ok()?;
    let b: jiff::Timestamp = r.finished_at.parse().ok()?;
    let ms = b.duration_since(a).as_millis().max(0) as u64;
    Some(human_ms(ms))
}

/// Where the run came from, as (label, value) pairs.
pub fn context_parts(r: &Report) -> Vec<(&'static str, String)> {
    let c = &r.context;
    let mut v = Vec::new();
    if let Some(x) = &c.repository {
        v.push(("repository", x.clone()));
    }
    if let Some(x) = &c.change {
        let label = if x.starts_with('!') { "MR" } else { "PR" };
        v.push((label, x.clone()));
    }
    if let Some(x) = &c.commit {
        v.push(("commit", x.clone()));
    }
    if let Some(x) = &c.actor {
        v.push(("by", x.clone()));
    }
    if let Some(x) = &c.cluster {
        v.push(("cluster", x.clone()));
    }
    if let Some(ns) = &r.namespace {
        v.push(("namespace", ns.clone()));
    }
    if let Some(d) = duration_text(r) {
        v.push(("took", d));
    }
    v
}
