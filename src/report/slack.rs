//! Slack: an incoming webhook, or a bot token with `chat.postMessage` and
//! later `chat.update` of the same message (the [`SlackThread`]). Block Kit
//! within Slack's limits, with a fallback `text` and a link to the CI job.
//! 429 honours `Retry-After` a bounded number of times; an HTTP 200 with
//! `ok: false` is a failure.

use std::time::Duration;

use anyhow::{anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::Report;
use super::escape::{slack_code, slack_text, truncate_chars};
use super::http::{api_error, http_error};
use super::markdown::{self, result_word};

/// 429 handling (set with the other sink settings).
pub use crate::config::SlackRetry as Retry;

const MAX_BLOCKS: usize = 50;
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3_000;
const FIELD_MAX: usize = 2_000;
/// Keep the whole message well under Slack's practical limit.
const TOTAL_MAX: usize = 12_000;
/// Fallback text (notifications) limit we keep.
const TEXT_MAX: usize = 3_000;

/// Where messages go.
#[derive(Clone)]
pub enum Target {
    Webhook(String),
    Bot {
        token: String,
        channel: String,
        /// Web API base, e.g. `https://slack.com/api`.
        api: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Webhook(_) => f.write_str("Webhook(<secret>)"),
            Target::Bot { channel, api, .. } => f
                .debug_struct("Bot")
                .field("channel", channel)
                .field("api", api)
                .finish_non_exhaustive(),
        }
    }
}

/// The message we posted with the bot token, to `chat.update` later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackThread {
    /// The channel id Slack answered with.
    pub channel: String,
    pub ts: String,
}

fn section(text: String) -> Value {
    json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": truncate_chars(&text, SECTION_MAX) }
    })
}

fn code_block(lines: &[String], budget: usize) -> String {
    let body = lines
        .iter()
        .map(|l| slack_code(l))
        .collect::<Vec<_>>()
        .join("\n");
    format!("```{}```", truncate_chars(&body, budget))
}

fn link_url(u: &str) -> String {
    u.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '<' | '>' | '|'))
        .collect()
}

/// The fallback `text` (notifications, clients without blocks): the
/// heading, once.
pub fn fallback_text(r: &Report) -> String {
    let (icon, _) = markdown::outcome(r.result);
    let t = format!("{icon} rollguard: {}", markdown::heading(r, TEXT_MAX));
    truncate_chars(&slack_text(&t), TEXT_MAX)
}

/// The Block Kit blocks for this report (≤ 50 blocks, section text ≤ 3 000
/// characters, header ≤ 150, all blocks ≤ ~12 000 characters). Each thing
/// is said once: the header has workload and verdict, the first section the
/// cause, then the facts, the findings (fix, evidence, log lines) and the
/// run's context.
pub fn blocks(r: &Report, job_url: Option<&str>) -> Vec<Value> {
    let (icon, word) = markdown::outcome(r.result);
    let header = json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": truncate_chars(&format!("{icon} {} {word}", r.workload), HEADER_MAX),
            "emoji": true
        }
    });
    let mut head = vec![header];
    // What the header does not say yet: the cause, or what was deployed.
    let heading = markdown::heading(r, SECTION_MAX);
    let prefix = format!("{} {word}", r.workload);
    let rest = heading
        .strip_prefix(&prefix)
        .map(|t| t.trim_start_matches(':').trim().to_string())
        .unwrap_or(heading.clone());
    if !rest.is_empty() {
        head.push(section(format!("*{}*", slack_text(&rest))));
    }
    let mut fields = Vec::new();
    let mut field = |k: &str, v: String| {
        if fields.len() < 10 {
            fields.push(json!({
                "type": "mrkdwn",
                "text": truncate_chars(&format!("*{k}*\n{v}"), FIELD_MAX)
            }));
        }
    };
    field(
        "Result",
        format!("`{}` (exit code {})", result_word(r.result), r.exit_code),
    );
    let rolled_back = r
        .rollback
        .as_ref()
        .is_some_and(|b| b.attempted && b.confirmed);
    match (&r.previous_image, &r.image) {
        (Some(old), Some(new)) if rolled_back => {
            field("Serving", slack_text(old));
            field("Attempted", slack_text(new));
        }
        (Some(old), Some(new)) => {
            field("New image", slack_text(new));
            field("Previous image", slack_text(old));
        }
        (None, Some(new)) => field("New image", slack_text(new)),
        _ => {}
    }
    if let Some(rev) = &r.revision {
        let v = match &r.serving_revision {
            Some(now) if rolled_back => format!(
                "{} (serving) · attempted {}",
                slack_text(now),
                slack_text(rev)
            ),
            _ => slack_text(rev),
        };
        field("Revision", v);
    }
    if let Some(p) = &r.progress
        && r.workloads.len() < 2
        && !p.name.is_empty()
    {
        let label = if markdown::is_failure(r.result) {
            "At the verdict"
        } else {
            "Progress"
        };
        field(label, slack_text(&p.line()));
    }
    head.push(json!({ "type": "section", "fields": fields }));
    let mut facts = Vec::new();
    if let Some(e) = markdown::exposure_text(r) {
        facts.push(format!("*Exposure:* {}", slack_text(&e)));
    }
    if let Some(rb) = markdown::rollback_text(r) {
        facts.push(format!("*Rollback:* {}", slack_text(&rb)));
    }
    if !facts.is_empty() {
        head.push(section(facts.join("\n")));
    }

    let mut tail = Vec::new();
    if let Some(gate) = super::analysis::slack(r) {
        tail.push(section(gate));
    }
    let events = markdown::fresh_events(r);
    if !events.is_empty() {
        tail.push(section(format!(
            "*Events* (common success events excluded)\n{}",
            code_block(&events, SECTION_MAX - 60)
        )));
    }
    let mut context: Vec<String> = markdown::context_parts(r)
        .into_iter()
        .map(|(k, v)| format!("{k} {}", slack_text(&v)))
        .collect();
    context.push(format!("rollguard {}", slack_text(r.rollguard_version)));
    if let Some(u) = job_url {
        context.push(format!("<{}|CI job>", link_url(u)));
    }
    tail.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": truncate_chars(&context.join(" · "), SECTION_MAX) }]
    }));

    let size = |bs: &[Value]| -> usize { bs.iter().map(|b| b.to_string().len()).sum() };
    let mut out = head;
    let mut used = size(&out) + size(&tail);
    let mut omitted = 0;
    for (i, f) in r.findings.iter().enumerate() {
        let container = f
            .container
            .as_deref()
            .map(|c| format!(", container {}", slack_text(c)))
            .unwrap_or_default();
        // The first finding's summary is the cause, already said above.
        let summary = if r.cause.as_deref() == Some(f.summary.as_str()) && rest.contains(&f.summary)
        {
            String::new()
        } else {
            format!("{}\n", slack_text(&f.summary))
        };
        let mut finding = vec![section(format!(
            "*{}. {}* ({}{container})\n{summary}*Fix:* {}",
            i + 1,
            slack_text(f.cause.title()),
            slack_text(&f.pods),
            slack_text(&f.fix)
        ))];
        let evidence = if f.per_pod.is_empty() {
            &f.evidence
        } else {
            &f.per_pod
        };
        if !evidence.is_empty() {
            finding.push(section(format!(
                "*Evidence*\n{}",
                code_block(evidence, SECTION_MAX - 40)
            )));
        }
        if !f.logs.is_empty() {
            finding.push(section(format!(
                "*Last log lines*\n{}",
                code_block(&f.logs, SECTION_MAX - 40)
            )));
        }
        let s = size(&finding);
        // Room for the tail and one "omitted" note.
        if omitted > 0
            || used + s > TOTAL_MAX
            || out.len() + finding.len() + tail.len() + 1 > MAX_BLOCKS
        {
            omitted += 1;
            continue;
        }
        used += s;
        out.extend(finding);
    }
    if omitted > 0 {
        out.push(section(format!(
            "_{omitted} more finding{} omitted; see the CI job._",
            if omitted == 1 { "" } else { "s" }
        )));
    }
    out.extend(tail);
    out.truncate(MAX_BLOCKS);
    out
}

/// The whole payload (without `channel`/`ts`).
pub fn message(r: &Report, job_url: Option<&str>) -> Value {
    json!({
        "text": fallback_text(r),
        "blocks": blocks(r, job_url),
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

fn retry_after(resp: &reqwest::Response) -> Duration {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
}

/// POST `body` (already JSON text) to `url`, retrying on 429. Returns the
/// final status and body text. `what` names the call in errors; `url` is
/// never shown (a webhook URL is a secret).
async fn post(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: &str,
    retry: Retry,
    what: &str,
) -> anyhow::Result<(StatusCode, String)> {
    let mut attempt = 0;
    loop {
        let mut req = http
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(body.to_string());
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| http_error("Slack", &Method::POST, what, e))?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS && attempt < retry.max_retries {
            attempt += 1;
            let wait = retry_after(&resp).min(retry.max_wait);
            tokio::time::sleep(wait).await;
            continue;
        }
        let text = resp
            .text()
            .await
            .map_err(|e| http_error("Slack", &Method::POST, what, e))?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            bail!(
                "Slack {what}: still rate limited (HTTP 429) after {} retries",
                retry.max_retries
            );
        }
        return Ok((status, text));
    }
}

/// Send the report: a new message, or with `thread` (bot token only) an
/// update of that message. Returns the message to update later (bot token
/// only). `scrub` removes secret values from the payload text.
pub async fn send(
    http: &reqwest::Client,
    target: &Target,
    retry: Retry,
    r: &Report,
    job_url: Option<&str>,
    thread: Option<&SlackThread>,
    scrub: &(dyn Fn(&str) -> String + Sync),
) -> anyhow::Result<Option<SlackThread>> {
    let mut payload = message(r, job_url);
    match target {
        Target::Webhook(url) => {
            let body = scrub(&payload.to_string());
            let (status, text) = post(http, url, None, &body, retry, "webhook").await?;
            if !status.is_success() {
                return Err(api_error("Slack", &Method::POST, "webhook", status, &text));
            }
            Ok(None)
        }
        Target::Bot {
            token,
            channel,
            api,
        } => {
            let (method, ch) = match thread {
                Some(t) => {
                    // chat.update takes no unfurl options.
                    if let Some(o) = payload.as_object_mut() {
                        o.remove("unfurl_links");
                        o.remove("unfurl_media");
                    }
                    payload["ts"] = json!(t.ts);
                    ("chat.update", t.channel.as_str())
                }
                None => ("chat.postMessage", channel.as_str()),
            };
            payload["channel"] = json!(ch);
            let url = format!("{}/{method}", api.trim_end_matches('/'));
            let body = scrub(&payload.to_string());
            let (status, text) = post(http, &url, Some(token), &body, retry, method).await?;
            if !status.is_success() {
                return Err(api_error("Slack", &Method::POST, method, status, &text));
            }
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow!("Slack {method}: invalid JSON answer: {e}"))?;
            if v["ok"].as_bool() != Some(true) {
                let err = v["error"].as_str().unwrap_or("unknown error");
                bail!("Slack {method} failed: {err}");
            }
            Ok(Some(SlackThread {
                channel: v["channel"].as_str().unwrap_or(ch).to_string(),
                ts: v["ts"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| thread.map(|t| t.ts.clone()))
                    .ok_or_else(|| anyhow!("Slack {method}: no ts in the answer"))?,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cause, Finding};

    #[test]
    fn blocks_stay_within_limits() {
        let mut r = Report::new("2026-01-01T00:00:00Z".into());
        r.workload = format!("deployment/{}", "a".repeat(300));
        r.cause = Some("x".repeat(10_000));
        for i in 0..60 {
            r.findings.push(Finding {
                cause: Cause::CrashLoop,
                summary: format!("finding {i} <!channel>"),
                container: Some("web".into()),
                pods: "3/3 new pods".into(),
                evidence: vec!["e".repeat(5_000)],
                per_pod: vec![],
                logs: vec!["```".repeat(2_000)],
                fix: "fix it".into(),
            });
        }
        let b = blocks(&r, Some("https://ci/job/1"));
        assert!(b.len() <= MAX_BLOCKS);
        let total: usize = b.iter().map(|b| b.to_string().len()).sum();
        assert!(total <= TOTAL_MAX + 4_000, "{total}");
        assert!(b[0]["text"]["text"].as_str().unwrap().chars().count() <= HEADER_MAX);
        for blk in &b {
            if let Some(t) = blk["text"]["text"].as_str() {
                assert!(t.chars().count() <= SECTION_MAX);
                assert!(!t.contains("<!channel>"));
            }
        }
    }
}
