//! The metric gate: a PromQL query about the new version, evaluated every
//! `analysis-interval` while the new pods bake (and during a canary's hold,
//! which runs the same bake loop), judged against `analysis-condition`.
//!
//! Rules, as the README states them:
//! - The first evaluation is one interval after the bake starts, then one
//!   every interval, and a last one when the bake ends (unless one ran in
//!   the last second), so a bake shorter than the interval is still judged.
//! - A value that fails the condition counts; `analysis-failure-limit`
//!   failing evaluations in a row fail the rollout (cause `metric-gate`).
//! - No data (an empty vector, NaN) is inconclusive: it neither counts nor
//!   resets the count, and the gate keeps waiting. A bake that ends without
//!   a single conclusive evaluation fails with "no data".
//! - Several series are a misconfigured query: the gate cannot choose one,
//!   so it fails at once naming the count (aggregate with `sum`, `max`…).
//! - HTTP and auth errors are retried (every 2 s, bounded by the interval);
//!   an evaluation that found no answer for a whole interval fails with the
//!   error.

pub mod condition;
pub mod prometheus;
pub mod settings;
pub mod template;

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

pub use condition::Condition;
pub use settings::{Inputs, Settings, from_inputs};

use crate::model::{Cause, Finding, Signal};
use prometheus::Answer;

/// How often a failing query is retried within one evaluation.
const RETRY: Duration = Duration::from_secs(2);

/// What one evaluation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    NoData,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NoData => "no data",
        }
    }
}

/// One evaluation of the query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// When it was evaluated (RFC 3339, UTC; the query's `time`).
    pub time: String,
    /// The value (None: no data).
    pub value: Option<f64>,
    pub outcome: Outcome,
}

/// Why the gate failed the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The value failed the condition `failure_limit` times in a row.
    Threshold,
    /// Not one conclusive evaluation before the bake ended.
    NoData,
    /// The query could not be answered for a whole interval.
    Error,
    /// The answer is not one number (several series, a range vector).
    Misconfigured,
}

/// The failing verdict, for the diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// One line: what failed.
    pub message: String,
    /// The failing value (threshold failures).
    pub value: Option<f64>,
    /// When (RFC 3339, UTC).
    pub time: String,
}

/// The gate as every sink shows it. Holds no credential.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The query as sent (placeholders filled in).
    pub query: String,
    /// `< 0.01`.
    pub condition: String,
    pub interval: String,
    pub failure_limit: u32,
    pub evaluations: Vec<Evaluation>,
    /// None when the gate passed (or was not reached).
    pub failure: Option<Failure>,
}

/// `0.2013`, `1.2e-5`: a value as the sinks print it.
pub fn show_value(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.3e}")
    }
}

/// `a failing evaluation fails the rollout` / `3 failing in a row fail the rollout`.
pub fn limit_text(limit: u32) -> String {
    if limit == 1 {
        "a failing evaluation fails the rollout".into()
    } else {
        format!("{limit} failing in a row fail the rollout")
    }
}

fn now_rfc3339() -> (String, f64) {
    let t = jiff::Timestamp::now();
    let secs = t.as_millisecond() as f64 / 1000.0;
    (
        t.round(jiff::Unit::Millisecond).unwrap_or(t).to_string(),
        secs,
    )
}

/// The gate's state during one bake.
#[derive(Debug)]
pub struct Gate {
    client: prometheus::Client,
    summary: Summary,
    condition: Condition,
    interval: Duration,
    /// When the next evaluation (or retry) is due.
    next: Option<Instant>,
    /// The last evaluation's moment.
    last: Option<Instant>,
    /// Failing evaluations in a row (no-data ones skipped).
    in_a_row: u32,
    /// Since when the current evaluation finds no answer, and why.
    erring: Option<(Instant, String)>,
}

impl Gate {
    /// The gate for one workload: the query rendered with its values.
    pub fn new(settings: &Settings, vars: &template::Vars) -> Result<Gate, String> {
        let timeout = settings
            .interval
            .clamp(Duration::from_secs(1), Duration::from_secs(10));
        let client = prometheus::Client::new(&settings.url, settings.auth.clone(), timeout)?;
        Ok(Gate {
            client,
            summary: Summary {
                query: template::render(&settings.query, vars),
                condition: settings.condition.to_string(),
                interval: humantime::format_duration(settings.interval).to_string(),
                failure_limit: settings.failure_limit,
                evaluations: Vec::new(),
                failure: None,
            },
            condition: settings.condition,
            interval: settings.interval,
            next: None,
            last: None,
            in_a_row: 0,
            erring: None,
        })
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn into_summary(self) -> Summary {
        self.summary
    }

    /// The bake starts: the first evaluation is one interval away.
    pub fn begin(&mut self, now: Instant, out: &mut (dyn Write + Send)) {
        self.next = Some(now + self.interval);
        let _ = writeln!(
            out,
            "metric gate: {} must be {} (every {}; {})",
            crate::text::quote(&self.summary.query, 300),
            self.summary.condition,
            self.summary.interval,
            limit_text(self.summary.failure_limit)
        );
    }

    /// Evaluate when due. Returns the failing verdict, once reached.
    pub async fn tick(&mut self, now: Instant, out: &mut (dyn Write + Send)) -> Option<&Failure> {
        if self.summary.failure.is_some() {
            return self.summary.failure.as_ref();
        }
        if self.next.is_none_or(|n| now < n) {
            return None;
        }
        self.evaluate(now, false, out).await;
        self.summary.failure.as_ref()
    }

    /// The bake ended: a last evaluation unless one just ran, then the
    /// no-data rule.
    pub async fn finish(&mut self, out: &mut (dyn Write + Send)) -> Option<&Failure> {
        if self.summary.failure.is_none() {
            let now = Instant::now();
            if self
                .last
                .is_none_or(|l| now.duration_since(l) >= Duration::from_secs(1))
            {
                self.evaluate(now, true, out).await;
            }
        }
        if self.summary.failure.is_none()
            && !self
                .summary
                .evaluations
                .iter()
                .any(|e| e.outcome != Outcome::NoData)
        {
            let (time, _) = now_rfc3339();
            let n = self.summary.evaluations.len();
            self.fail(
                FailureKind::NoData,
                format!(
                    "metric gate: no data: the query returned nothing to judge in {n} evaluation{} during the bake",
                    if n == 1 { "" } else { "s" }
                ),
                None,
                time,
                out,
            );
        }
        self.summary.failure.as_ref()
    }

    fn fail(
        &mut self,
        kind: FailureKind,
        message: String,
        value: Option<f64>,
        time: String,
        out: &mut (dyn Write + Send),
    ) {
        let _ = writeln!(out, "{message}");
        self.summary.failure = Some(Failure {
            kind,
            message,
            value,
            time,
        });
    }

    async fn evaluate(&mut self, now: Instant, last_chance: bool, out: &mut (dyn Write + Send)) {
        let (time, secs) = now_rfc3339();
        let answer = self.client.query(&self.summary.query, secs).await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let since = self.erring.get_or_insert_with(|| (now, String::new()));
                since.1 = e.0.clone();
                let erring_for = now.duration_since(since.0);
                let judged = self
                    .summary
                    .evaluations
                    .iter()
                    .any(|e| e.outcome != Outcome::NoData);
                if last_chance && judged {
                    let _ = writeln!(
                        out,
                        "metric gate: the last query failed ({}); judged on the evaluations before",
                        e.0
                    );
                } else if last_chance || erring_for >= self.interval {
                    let message = if erring_for >= Duration::from_secs(1) {
                        format!(
                            "metric gate: the Prometheus query failed for {}: {}",
                            humantime::format_duration(Duration::from_secs(erring_for.as_secs())),
                            e.0
                        )
                    } else {
                        format!("metric gate: the Prometheus query failed: {}", e.0)
                    };
                    self.fail(FailureKind::Error, message, None, time, out);
                } else {
                    let _ = writeln!(out, "metric gate: query failed (retrying): {}", e.0);
                    self.next = Some(now + RETRY.min(self.interval));
                }
                return;
            }
        };
        self.erring = None;
        self.last = Some(now);
        self.next = Some(now + self.interval);
        let (value, outcome) = match answer {
            Answer::Value(v) if self.condition.passes(v) => (Some(v), Outcome::Pass),
            Answer::Value(v) => (Some(v), Outcome::Fail),
            Answer::NoData => (None, Outcome::NoData),
            Answer::Series(n) => {
                let message = format!(
                    "metric gate: the query returned {n} series; the gate needs one number (aggregate it, e.g. with sum(...) or max(...))"
                );
                return self.fail(FailureKind::Misconfigured, message, None, time, out);
            }
            Answer::Unusable(kind) => {
                let message = format!(
                    "metric gate: the query returned a {kind}; the gate needs one number (an instant vector of one series, or a scalar)"
                );
                return self.fail(FailureKind::Misconfigured, message, None, time, out);
            }
        };
        match outcome {
            Outcome::Pass => self.in_a_row = 0,
            Outcome::Fail => self.in_a_row += 1,
            Outcome::NoData => {}
        }
        let limit = self.summary.failure_limit;
        let shown = value.map_or_else(|| "no data".to_string(), show_value);
        let note = match outcome {
            Outcome::Pass => "pass".to_string(),
            Outcome::Fail => format!("fail ({} of {limit} in a row)", self.in_a_row),
            Outcome::NoData => "inconclusive, waiting".to_string(),
        };
        let _ = writeln!(
            out,
            "metric gate at {time}: {shown}, condition {}: {note}",
            self.summary.condition
        );
        self.summary.evaluations.push(Evaluation {
            time: time.clone(),
            value,
            outcome,
        });
        if outcome == Outcome::Fail && self.in_a_row >= limit {
            let v = value.unwrap_or(f64::NAN);
            let message = format!(
                "metric gate: {} is not {} ({} failing evaluation{} in a row)",
                show_value(v),
                self.summary.condition,
                self.in_a_row,
                if self.in_a_row == 1 { "" } else { "s" }
            );
            self.fail(FailureKind::Threshold, message, value, time, out);
        }
    }

    /// The signal a failed gate ends the bake with.
    pub fn signal(&self) -> Signal {
        Signal {
            cause: Cause::MetricGate,
            pod: String::new(),
            container: None,
            message: self
                .summary
                .failure
                .as_ref()
                .map_or_else(String::new, |f| f.message.clone()),
            restarts: 0,
            exit_code: None,
        }
    }
}

/// The diagnosis of a failed gate: the query as sent, the value, the
/// condition and the time.
pub fn finding(summary: &Summary, container: Option<String>) -> Option<Finding> {
    let f = summary.failure.as_ref()?;
    let mut evidence = vec![format!("query: {}", summary.query)];
    evidence.push(match f.value {
        Some(v) => format!(
            "value: {} at {} (condition {}, failure limit {} in a row)",
            show_value(v),
            f.time,
            summary.condition,
            summary.failure_limit
        ),
        None => format!("at {}: {}", f.time, f.message),
    });
    let fix = match f.kind {
        FailureKind::Threshold => {
            "The new version's metrics fail the gate: look at what the query measures for the new pods (their logs, the failing requests) and fix the build; the previous version is serving again."
        }
        FailureKind::NoData => {
            "The query found nothing for the new version: check that Prometheus scrapes the new pods, and that the query's labels match theirs (e.g. {{ version_label }}=\"{{ version }}\"); run it in the Prometheus UI."
        }
        FailureKind::Error => {
            "Check prometheus-url and the credentials (prometheus-token, or prometheus-username and prometheus-password), and that the query parses."
        }
        FailureKind::Misconfigured => {
            "Make the query return one number: aggregate the series (sum, max, avg) or select one."
        }
    };
    Some(Finding {
        cause: Cause::MetricGate,
        summary: crate::text::quote(&f.message, 400),
        container,
        pods: "new version".into(),
        evidence: evidence
            .into_iter()
            .map(|e| crate::text::quote(&e, 2000))
            .collect(),
        per_pod: Vec::new(),
        logs: Vec::new(),
        fix: fix.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_short() {
        assert_eq!(show_value(0.2), "0.2");
        assert_eq!(show_value(0.0), "0");
        assert_eq!(show_value(0.00123), "0.0012");
        assert_eq!(show_value(1.5e-5), "1.500e-5");
        assert_eq!(show_value(12.0), "12");
    }
}
