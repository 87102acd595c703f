//! The rollout's timeline: old vs new ready pods as the tracker saw them,
//! what it tells about exposure (how low availability went and for how
//! long, how long the new version served before it failed), and the chart
//! of the Markdown sinks.
//!
//! The samples arrive whenever a count changed, so they are unevenly spaced
//! and may share a second. The chart resamples them onto evenly spaced,
//! distinct time ticks (each value carried forward from the last sample at
//! or before the tick) and marks the verdict and the rollback.

use serde::Serialize;

pub use crate::model::timeline::{Mark, Phase, Sample};

/// What the timeline says about the service during the run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Exposure {
    /// The lowest available count, and for how long it stayed there (ms,
    /// summed over every stretch at that count).
    pub lowest_available: Option<(i32, u64)>,
    /// From the patch to the verdict (ms).
    pub verdict_after: Option<u64>,
    /// The rollout completed (every new pod ready) this long after the
    /// patch; a failure after that failed during the bake.
    pub completed_after: Option<u64>,
    /// How long at least one new pod was ready before the verdict (ms).
    pub new_served: u64,
    /// The most new pods ready at once before the verdict.
    pub new_peak: i32,
    /// The rollback took this long (verdict to its end, ms).
    pub rollback_took: Option<u64>,
}

fn first_mark(t: &[Sample], m: Mark) -> Option<u64> {
    t.iter().find(|s| s.mark == Some(m)).map(|s| s.millis)
}

/// Exposure numbers of a timeline.
pub fn exposure(t: &[Sample]) -> Exposure {
    let mut e = Exposure::default();
    if t.is_empty() {
        return e;
    }
    let end = t.last().map(|s| s.millis).unwrap_or(0);
    let completed = first_mark(t, Mark::Complete);
    let verdict = first_mark(t, Mark::Verdict).or(completed);
    e.completed_after = completed;
    e.verdict_after = verdict;
    if let (Some(v), Some(end)) = (verdict, first_mark(t, Mark::RollbackEnd)) {
        e.rollback_took = Some(end.saturating_sub(v));
    }
    let lowest = t.iter().map(|s| s.available).min().unwrap_or(0);
    let mut at_lowest = 0;
    for (i, s) in t.iter().enumerate() {
        let next = t.get(i + 1).map(|n| n.millis).unwrap_or(end);
        let span = next.saturating_sub(s.millis);
        if s.available == lowest {
            at_lowest += span;
        }
        if verdict.is_none_or(|v| s.millis < v) {
            if s.new_ready > 0 {
                let until = verdict.map_or(next, |v| next.min(v));
                e.new_served += until.saturating_sub(s.millis);
            }
            e.new_peak = e.new_peak.max(s.new_ready);
        }
    }
    e.lowest_available = Some((lowest, at_lowest));
    e
}

/// A duration for people: `850 ms`, `4.2 s`, `12 s`, `2 min 5 s`.
pub fn human_ms(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 120_000 {
        format!("{} s", (ms + 500) / 1000)
    } else {
        let s = (ms + 500) / 1000;
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// One tick of the resampled chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub millis: u64,
    pub label: String,
    pub old_ready: i32,
    pub new_ready: i32,
    pub rollback: bool,
}

/// Most ticks on the chart's x-axis.
const MAX_TICKS: u64 = 14;
/// Steps the ticks may be apart (ms): always a round number of a unit.
const STEPS: &[u64] = &[
    100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
    600_000, 1_800_000, 3_600_000,
];

fn tick_label(ms: u64, step: u64) -> String {
    if step < 1_000 {
        let s = ms as f64 / 1000.0;
        if step == 250 {
            format!("{s:.2}s")
        } else {
            format!("{s:.1}s")
        }
    } else if step < 60_000 || !ms.is_multiple_of(60_000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m", ms / 60_000)
    }
}

/// The value at `ms`: the last sample at or before it (carried forward).
fn at(t: &[Sample], ms: u64) -> Option<&Sample> {
    t.iter().take_while(|s| s.millis <= ms).last()
}

/// Evenly spaced ticks over the whole timeline, each label distinct; the
/// verdict's and the rollback end's tick carry a sign (✘/✔, ↩).
pub fn ticks(t: &[Sample], failed: bool) -> Vec<Tick> {
    let Some(last) = t.last() else {
        return Vec::new();
    };
    let end = last.millis.max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| end.div_ceil(*s) < MAX_TICKS)
        .unwrap_or(3_600_000);
    let n = end.div_ceil(step);
    let verdict = first_mark(t, Mark::Verdict).or(first_mark(t, Mark::Complete));
    let rollback_end = first_mark(t, Mark::RollbackEnd);
    let mut out: Vec<Tick> = Vec::new();
    for k in 0..=n {
        let ms = k * step;
        let (old_ready, new_ready, phase) = match at(t, ms) {
            Some(s) => (s.old_ready, s.new_ready, s.phase),
            // Before the first sample: the first sample's counts.
            None => (t[0].old_ready, t[0].new_ready, Phase::Rollout),
        };
        let mut label = tick_label(ms, step);
        // The tick at or right after a marked moment carries its sign.
        let marks = |m: Option<u64>| m.is_some_and(|m| m <= ms && m + step > ms);
        if marks(verdict) {
            label.push_str(if failed { " ✘" } else { " ✔" });
        } else if marks(rollback_end) || (rollback_end.is_some() && k == n) {
            label.push_str(" end");
        } else if phase == Phase::Rollback {
            label.push_str(" ↩");
        }
        out.push(Tick {
            millis: ms,
            label,
            old_ready,
            new_ready,
            rollback: phase == Phase::Rollback,
        });
    }
    // The marked moments happen after the last change: make sure the last
    // tick shows the final counts.
    if let Some(l) = out.last_mut() {
        l.old_ready = last.old_ready;
        l.new_ready = last.new_ready;
    }
    out
}

/// Is there anything to draw? A run that changed nothing over time (or
/// ended within a tick or two) gets a one-line text timeline instead.
pub fn worth_a_chart(t: &[Sample]) -> bool {
    let distinct = t
        .windows(2)
        .filter(|w| (w[0].old_ready, w[0].new_ready) != (w[1].old_ready, w[1].new_ready))
        .count();
    t.len() >= 3 && distinct >= 2 && t.last().is_some_and(|l| l.millis >= 1_000)
}

/// The timeline in one line of text: each change with its time.
pub fn text_line(t: &[Sample]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut last: Option<(i32, i32)> = None;
    for s in t {
        let counts = (s.old_ready, s.new_ready);
        let mark = match s.mark {
            Some(Mark::Complete) => " (rollout complete)",
            Some(Mark::Verdict) => " (verdict)",
            Some(Mark::RollbackEnd) => " (rollback done)",
            None => "",
        };
        if last == Some(counts) && mark.is_empty() {
            continue;
        }
        last = Some(counts);
        parts.push(format!(
            "{}: old {} · new {}{mark}",
            human_ms(s.millis),
            s.old_ready,
            s.new_ready
        ));
    }
    parts.join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64, old: i32, new: i32, phase: Phase, mark: Option<Mark>) -> Sample {
        Sample {
            phase,
            mark,
            ..Sample::new(ms, old, new, old + new)
        }
    }

    fn crash_story() -> Vec<Sample> {
        vec![
            s(0, 3, 0, Phase::Rollout, None),
            s(400, 2, 0, Phase::Rollout, None),
            s(900, 2, 1, Phase::Rollout, None),
            s(1_800, 0, 1, Phase::Rollout, None),
            s(2_600, 0, 0, Phase::Rollout, None),
            s(5_300, 0, 0, Phase::Rollout, Some(Mark::Verdict)),
            s(5_400, 0, 0, Phase::Rollback, None),
            s(6_100, 1, 0, Phase::Rollback, None),
            s(7_700, 3, 0, Phase::Rollback, None),
            s(7_800, 3, 0, Phase::Rollback, Some(Mark::RollbackEnd)),
        ]
    }

    #[test]
    fn ticks_are_distinct_evenly_spaced_and_carry_values_forward() {
        let t = crash_story();
        let ticks = ticks(&t, true);
        let labels: Vec<&str> = ticks.iter().map(|t| t.label.as_str()).collect();
        let mut uniq = labels.clone();
        uniq.dedup();
        assert_eq!(uniq.len(), labels.len(), "{labels:?}");
        assert!(ticks.len() >= 5 && ticks.len() as u64 <= MAX_TICKS + 1);
        let gaps: Vec<u64> = ticks
            .windows(2)
            .map(|w| w[1].millis - w[0].millis)
            .collect();
        assert!(gaps.windows(2).all(|g| g[0] == g[1]), "{gaps:?}");
        // The old series starts at its real count.
        assert_eq!(ticks[0].old_ready, 3);
        assert_eq!(ticks.iter().filter(|t| t.label.ends_with('✘')).count(), 1);
        assert!(ticks.iter().any(|t| t.label.contains('↩')));
        assert!(ticks.last().unwrap().label.ends_with(" end"));
        assert!(ticks.iter().any(|t| t.rollback));
        assert_eq!(ticks.last().unwrap().old_ready, 3);
    }

    #[test]
    fn exposure_of_a_crash_and_of_a_bake_failure() {
        let e = exposure(&crash_story());
        assert_eq!(e.lowest_available, Some((0, 2_700 + 100 + 700)));
        assert_eq!(e.verdict_after, Some(5_300));
        assert_eq!(e.new_served, 1_700);
        assert_eq!(e.new_peak, 1);
        assert_eq!(e.rollback_took, Some(2_500));
        let bake = vec![
            s(0, 2, 0, Phase::Rollout, None),
            s(1_000, 1, 1, Phase::Rollout, None),
            s(2_000, 0, 2, Phase::Rollout, Some(Mark::Complete)),
            s(6_000, 0, 1, Phase::Bake, Some(Mark::Verdict)),
        ];
        let e = exposure(&bake);
        assert_eq!(e.completed_after, Some(2_000));
        assert_eq!(e.verdict_after, Some(6_000));
        assert_eq!(e.new_peak, 2);
        assert_eq!(e.new_served, 5_000);
    }

    #[test]
    fn short_runs_get_a_text_line() {
        let t = vec![
            s(0, 1, 0, Phase::Rollout, None),
            s(300, 0, 1, Phase::Rollout, Some(Mark::Complete)),
        ];
        assert!(!worth_a_chart(&t));
        assert_eq!(
            text_line(&t),
            "0 ms: old 1 · new 0 → 300 ms: old 0 · new 1 (rollout complete)"
        );
        assert!(worth_a_chart(&crash_story()));
        assert_eq!(human_ms(4_230), "4.2 s");
        assert_eq!(human_ms(125_000), "2 min 5 s");
    }
}
