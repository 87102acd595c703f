//! The CI sinks in one call: GitHub (outputs, step summary, annotation, PR
//! comment), GitLab (MR note) and Slack. None of them can change the run's
//! outcome: every failure becomes one warning line, free of secrets.
//!
//! The core calls, in this order:
//! 1. [`start`] first thing, and prints what it returns to stdout
//!    (`::add-mask::` for every secret on GitHub);
//! 2. [`group_start`]/[`group_end`] around the progress lines (GitHub
//!    `::group::`, GitLab collapsible sections, nothing elsewhere);
//! 3. optionally [`slack_early`] when the failure is detected, before the
//!    rollback (bot token only: it returns the [`SlackThread`] to update);
//! 4. [`publish`] (or [`publish_with`] with the thread from step 3) at the
//!    very end, after the console and JSON sinks.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::Report;
use super::escape::truncate;
use super::github::{self, CommentOutcome};
use super::gitlab::{self, NoteOutcome};
use super::markdown;
use super::slack::{self, Retry, SlackThread, Target};
use crate::config::{Env, Settings, SlackOn};

/// The sinks' inputs, secrets included (never Debug-printed in full).
#[derive(Clone)]
pub struct SinkConfig {
    pub github_token: Option<String>,
    pub gitlab_token: Option<String>,
    pub slack_webhook: Option<String>,
    pub slack_token: Option<String>,
    pub slack_channel: Option<String>,
    pub slack_on: SlackOn,
    /// Other secret values to keep out of every output (e.g. the kube
    /// token, a password from the kubeconfig).
    pub extra_secrets: Vec<String>,
    pub slack_retry: Retry,
    /// Per HTTP request.
    pub http_timeout: Duration,
    /// The GitHub environment to record a deployment for, and its URL.
    pub environment: Option<String>,
    pub environment_url: Option<String>,
    /// The GitHub deployment [`deployment_begin`] created: [`publish_with`]
    /// posts its final status.
    pub github_deployment: Option<super::deployments::Created>,
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("SinkConfig")
            .field("github_token", &set(&self.github_token))
            .field("gitlab_token", &set(&self.gitlab_token))
            .field("slack_webhook", &set(&self.slack_webhook))
            .field("slack_token", &set(&self.slack_token))
            .field("slack_channel", &self.slack_channel)
            .field("slack_on", &self.slack_on)
            .field("environment", &self.environment)
            .field("github_deployment", &self.github_deployment)
            .finish_non_exhaustive()
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            github_token: None,
            gitlab_token: None,
            slack_webhook: None,
            slack_token: None,
            slack_channel: None,
            slack_on: SlackOn::Failure,
            extra_secrets: Vec::new(),
            slack_retry: Retry::default(),
            http_timeout: Duration::from_secs(15),
            environment: None,
            environment_url: None,
            github_deployment: None,
        }
    }
}

impl SinkConfig {
    /// From validated settings.
    pub fn from_settings(s: &Settings) -> SinkConfig {
        SinkConfig {
            github_token: s.secrets.github_token.clone(),
            gitlab_token: s.secrets.gitlab_token.clone(),
            slack_webhook: s.secrets.slack_webhook.clone(),
            slack_token: s.secrets.slack_token.clone(),
            slack_channel: s.slack_channel.clone(),
            slack_on: s.slack_on,
            environment: s.environment.clone(),
            environment_url: s.environment_url.clone(),
            // The metric gate's credentials: masked and scrubbed like the rest.
            extra_secrets: [&s.secrets.prometheus_token, &s.secrets.prometheus_password]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            ..SinkConfig::default()
        }
    }

    /// Every secret value that is set, longest first.
    pub fn secrets(&self) -> Vec<&str> {
        let mut v: Vec<&str> = [
            &self.github_token,
            &self.gitlab_token,
            &self.slack_webhook,
            &self.slack_token,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .chain(self.extra_secrets.iter().map(String::as_str))
        .filter(|s| !s.trim().is_empty())
        .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v
    }

    /// Replace every secret value in `s` with `***`.
    pub fn scrub(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in self.secrets() {
            // Very short values would mangle ordinary text; they are still
            // masked by the runner.
            if secret.len() >= 4 && out.contains(secret) {
                out = out.replace(secret, "***");
            }
        }
        out
    }

    fn slack_target(&self, env: &Env) -> Option<Target> {
        if let (Some(token), Some(channel)) = (&self.slack_token, &self.slack_channel) {
            let api = env
                .get(slack::API_URL_VAR)
                .filter(|u| !u.is_empty())
                .cloned()
                .unwrap_or_else(|| slack::DEFAULT_API.to_string());
            return Some(Target::Bot {
                token: token.clone(),
                channel: channel.clone(),
                api,
            });
        }
        self.slack_webhook.clone().map(Target::Webhook)
    }
}

/// An HTTP error answer from a sink's API (status + the API's message).
#[derive(Debug)]
pub struct ApiError {
    pub service: &'static str,
    pub what: String,
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: HTTP {}",
            self.service,
            self.what,
            self.status.as_u16()
        )?;
        if !self.message.trim().is_empty() {
            write!(f, ": {}", self.message.trim())?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// An API error answer. `path` must not contain secrets (no host, no query).
pub(crate) fn api_error(
    service: &'static str,
    method: &Method,
    path: &str,
    status: StatusCode,
    message: &str,
) -> anyhow::Error {
    let message: String = truncate(&message.replace(['\r', '\n'], " "), 200);
    anyhow::Error::new(ApiError {
        service,
        what: format!("{method} {path}"),
        status,
        message,
    })
}

/// A transport error, without the URL (a webhook URL is a secret).
pub(crate) fn http_error(
    service: &'static str,
    method: &Method,
    path: &str,
    e: reqwest::Error,
) -> anyhow::Error {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    anyhow::anyhow!("{service} {method} {path}: {kind} ({detail})")
}

/// What [`publish_with`] did.
#[derive(Debug, Default)]
pub struct Published {
    /// Workflow commands for stdout (already printed by [`publish`]).
    pub stdout: String,
    /// One line per failed sink, secrets removed.
    pub warnings: Vec<String>,
    /// The Slack message to `chat.update` later (bot token only).
    pub slack_thread: Option<SlackThread>,
    /// What was done, for the log (one line each).
    pub done: Vec<String>,
}

/// What to print to stdout first thing in the run: `::add-mask::` for
/// every secret value when running on GitHub Actions.
pub fn start(sinks: &SinkConfig, env: &Env) -> String {
    if github::active(env) {
        github::mask_commands(sinks.secrets())
    } else {
        String::new()
    }
}

/// The GitLab section's name (its header is the readable title).
const SECTION: &str = "rollguard_rollout";

/// Open a collapsible group in the CI log (GitHub `::group::`, GitLab
/// section); empty elsewhere. `title` must be our own text.
pub fn group_start(env: &Env, title: &str) -> String {
    if github::active(env) {
        github::group_start(title)
    } else if gitlab::active(env) {
        gitlab::section_start(SECTION, title, true)
    } else {
        String::new()
    }
}

/// Close the group opened by [`group_start`].
pub fn group_end(env: &Env) -> String {
    if github::active(env) {
        github::group_end()
    } else if gitlab::active(env) {
        gitlab::section_end(SECTION)
    } else {
        String::new()
    }
}

/// The group's title: `rollguard: deployment/web → 1.3` (the new tag, or
/// the new image when a full reference was given).
pub fn group_title(settings: &Settings) -> String {
    let workloads = settings
        .workloads
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let to = match &settings.change {
        crate::config::ImageChange::Tag(t) => t.clone(),
        crate::config::ImageChange::Image(i) => i.clone(),
    };
    format!("rollguard: {workloads} → {to}")
}

fn client(sinks: &SinkConfig) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("rollguard/", env!("CARGO_PKG_VERSION")))
        .timeout(sinks.http_timeout)
        .connect_timeout(sinks.http_timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("could not build the HTTP client: {}", e.without_url()))
}

fn slack_wanted(report: &Report, sinks: &SinkConfig) -> bool {
    match sinks.slack_on {
        SlackOn::Always => true,
        SlackOn::Failure => markdown::is_failure(report.result),
    }
}

/// Post to Slack now, before the final report (e.g. when the failure is
/// detected, before the rollback), so the final [`publish_with`] updates the
/// same message. Only with a bot token + channel (a webhook cannot update):
/// otherwise nothing is sent and `None` is returned.
pub async fn slack_early(
    report: &Report,
    sinks: &SinkConfig,
    env: &Env,
) -> (Option<SlackThread>, Vec<String>) {
    let report = &super::sanitise::report(report);
    let Some(target @ Target::Bot { .. }) = sinks.slack_target(env) else {
        return (None, Vec::new());
    };
    if !slack_wanted(report, sinks) {
        return (None, Vec::new());
    }
    let http = match client(sinks) {
        Ok(c) => c,
        Err(e) => return (None, vec![format!("Slack: {e}")]),
    };
    let scrub = |s: &str| sinks.scrub(s);
    let job = markdown::job_url(env);
    match slack::send(
        &http,
        &target,
        sinks.slack_retry,
        report,
        job.as_deref(),
        None,
        &scrub,
    )
    .await
    {
        Ok(t) => (t, Vec::new()),
        Err(e) => (None, vec![sinks.scrub(&format!("Slack: {e:#}"))]),
    }
}

/// Record the run as a GitHub deployment of `sinks.environment` (status
/// `in_progress`) when that is wanted: on GitHub Actions, with a token and
/// an environment, not for a dry run. Returns the deployment (to keep in
/// [`SinkConfig::github_deployment`]) and at most one warning.
pub async fn deployment_begin(
    sinks: &SinkConfig,
    env: &Env,
    description: &str,
    dry_run: bool,
) -> (Option<super::deployments::Created>, Vec<String>) {
    use super::deployments;
    let (Some(token), Some(environment)) = (&sinks.github_token, &sinks.environment) else {
        return (None, Vec::new());
    };
    if !deployments::wanted(env, Some(token), Some(environment), dry_run) {
        return (None, Vec::new());
    }
    let http = match client(sinks) {
        Ok(c) => c,
        Err(e) => return (None, vec![format!("GitHub deployment: {e}")]),
    };
    match deployments::begin(
        &http,
        token,
        env,
        environment,
        sinks.environment_url.as_deref(),
        description,
    )
    .await
    {
        Ok(d) => (Some(d), Vec::new()),
        Err(e) => (
            None,
            vec![sinks.scrub(&format!(
                "GitHub deployment not recorded: {e:#} (the workflow needs `permissions: deployments: write`)"
            ))],
        ),
    }
}

/// `::warning::` lines for these warnings on GitHub (empty elsewhere).
pub fn warning_lines(env: &Env, warnings: &[String]) -> String {
    if github::active(env) {
        warnings
            .iter()
            .map(|w| github::warning_command(w))
            .collect()
    } else {
        String::new()
    }
}

/// Every CI sink; prints the workflow commands to stdout and returns the
/// warnings (one line per failed sink, secrets removed).
pub async fn publish(report: &Report, sinks: &SinkConfig, env: &Env) -> Vec<String> {
    let p = publish_with(report, sinks, env, None).await;
    if !p.stdout.is_empty() {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(p.stdout.as_bytes());
        let _ = out.flush();
    }
    p.warnings
}

/// Every CI sink, printing nothing: the caller prints `stdout`. With
/// `slack_thread` (from [`slack_early`]) the Slack message is updated
/// rather than posted anew.
pub async fn publish_with(
    report: &Report,
    sinks: &SinkConfig,
    env: &Env,
    slack_thread: Option<SlackThread>,
) -> Published {
    // Cluster and input text, safe for every text sink below.
    let report = &super::sanitise::report(report);
    let mut p = Published {
        slack_thread: slack_thread.clone(),
        ..Published::default()
    };
    let scrub = |s: &str| sinks.scrub(s);
    let warn = |p: &mut Published, s: String| p.warnings.push(sinks.scrub(&s));

    let needs_http = (github::active(env) && sinks.github_token.is_some())
        || sinks.github_deployment.is_some()
        || (gitlab::active(env) && sinks.gitlab_token.is_some())
        || (slack_wanted(report, sinks) && sinks.slack_target(env).is_some());
    let http = if needs_http {
        match client(sinks) {
            Ok(c) => Some(c),
            Err(e) => {
                warn(&mut p, format!("CI sinks: {e}"));
                None
            }
        }
    } else {
        None
    };

    if github::active(env) {
        p.stdout.push_str(&scrub(&github::annotation(report)));
        match github::append_to(env, "GITHUB_OUTPUT", &scrub(&github::outputs_text(report))) {
            Ok(_) => {}
            Err(e) => warn(&mut p, format!("GitHub outputs: {e:#}")),
        }
        match github::append_to(
            env,
            "GITHUB_STEP_SUMMARY",
            &scrub(&github::summary_text(report)),
        ) {
            Ok(_) => {}
            Err(e) => warn(&mut p, format!("GitHub step summary: {e:#}")),
        }
        if let (Some(token), Some(http)) = (&sinks.github_token, &http) {
            match github::comment(http, report, token, env, &scrub).await {
                Ok(CommentOutcome::Created(id)) => {
                    p.done.push(format!("GitHub: created PR comment {id}"))
                }
                Ok(CommentOutcome::Updated(id)) => {
                    p.done.push(format!("GitHub: updated PR comment {id}"))
                }
                Ok(CommentOutcome::NoPullRequest) => {}
                Err(e) => warn(&mut p, format!("GitHub PR comment not written: {e:#}")),
            }
        }
    }

    if let (Some(d), Some(token), Some(http)) =
        (&sinks.github_deployment, &sinks.github_token, &http)
    {
        match super::deployments::finish(
            http,
            token,
            env,
            d,
            sinks.environment_url.as_deref(),
            report,
            &scrub,
        )
        .await
        {
            Ok(state) => p
                .done
                .push(format!("GitHub: deployment {} marked {state}", d.id)),
            Err(e) => warn(
                &mut p,
                format!("GitHub deployment status not posted: {e:#}"),
            ),
        }
    }

    if gitlab::active(env)
        && let (Some(token), Some(http)) = (&sinks.gitlab_token, &http)
    {
        match gitlab::note(http, report, token, env, &scrub).await {
            Ok(NoteOutcome::Created(id)) => p.done.push(format!("GitLab: created MR note {id}")),
            Ok(NoteOutcome::Updated(id)) => p.done.push(format!("GitLab: updated MR note {id}")),
            Ok(NoteOutcome::NoMergeRequest) => {}
            Err(e) => warn(&mut p, format!("GitLab MR note not written: {e:#}")),
        }
    }

    if slack_wanted(report, sinks)
        && let (Some(target), Some(http)) = (sinks.slack_target(env), &http)
    {
        let job = markdown::job_url(env);
        let thread = match &target {
            Target::Bot { .. } => slack_thread.as_ref(),
            Target::Webhook(_) => None,
        };
        match slack::send(
            http,
            &target,
            sinks.slack_retry,
            report,
            job.as_deref(),
            thread,
            &scrub,
        )
        .await
        {
            Ok(t) => {
                p.done.push(
                    if thread.is_some() {
                        "Slack: message updated"
                    } else {
                        "Slack: message posted"
                    }
                    .to_string(),
                );
                if t.is_some() {
                    p.slack_thread = t;
                }
            }
            Err(e) => warn(&mut p, format!("Slack message not sent: {e:#}")),
        }
    }
    if github::active(env) {
        for w in p.warnings.clone() {
            p.stdout.push_str(&github::warning_command(&w));
        }
    }
    p
}
