//! The CI sinks in one call: GitHub (outputs, step summary, annotation, PR
//! comment), GitLab (MR note) and Slack. None of them can change the run's
//! outcome: every failure becomes one warning line, free of secrets.
//!
//! The core calls, in this order:
//! 1. [`start`] first thing, and prints what it returns to stdout
//!    (`::add-mask::` for every secret on GitHub);
//! 2. [`deployment_begin`] (a GitHub deployment `in_progress`, when wanted);
//! 3. [`group_start`]/[`group_end`] around the progress lines (GitHub
//!    `::group::`, GitLab collapsible sections, nothing elsewhere);
//! 4. [`publish`] (or [`publish_with`], with what step 2 created) at the
//!    very end, after the console and JSON sinks.

use super::Report;
use super::deployments::{self, Created};
use super::github::{self, CommentOutcome};
use super::gitlab::{self, NoteOutcome};
use super::http::client;
use super::markdown;
use super::slack::{self, SlackThread, Target};
use crate::config::{CiContext, ImageChange, Settings, SlackOn};

/// The sinks' settings (parsed with the other inputs).
pub use crate::config::SinkSettings as SinkConfig;

/// Where the Slack message goes: the bot token and channel, else the webhook.
fn slack_target(sinks: &SinkConfig) -> Option<Target> {
    if let (Some(token), Some(channel)) = (&sinks.slack_token, &sinks.slack_channel) {
        return Some(Target::Bot {
            token: token.clone(),
            channel: channel.clone(),
            api: sinks.slack_api.clone(),
        });
    }
    sinks.slack_webhook.clone().map(Target::Webhook)
}

/// What earlier steps of the run posted, for the final publish to update.
#[derive(Debug, Clone, Default)]
pub struct Posted {
    /// The GitHub deployment [`deployment_begin`] created: its final status
    /// is posted.
    pub github_deployment: Option<Created>,
    /// A Slack message (bot token) to `chat.update` rather than post anew.
    pub slack_thread: Option<SlackThread>,
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
pub fn start(sinks: &SinkConfig, ci: &CiContext) -> String {
    if ci.github.actions {
        github::mask_commands(sinks.secrets())
    } else {
        String::new()
    }
}

/// The GitLab section's name (its header is the readable title).
const SECTION: &str = "rollguard_rollout";

/// Open a collapsible group in the CI log (GitHub `::group::`, GitLab
/// section); empty elsewhere. `title` must be our own text.
pub fn group_start(ci: &CiContext, title: &str) -> String {
    if ci.github.actions {
        github::group_start(title)
    } else if ci.gitlab.ci {
        gitlab::section_start(SECTION, title, true)
    } else {
        String::new()
    }
}

/// Close the group opened by [`group_start`].
pub fn group_end(ci: &CiContext) -> String {
    if ci.github.actions {
        github::group_end()
    } else if ci.gitlab.ci {
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
        ImageChange::Tag(t) => t.clone(),
        ImageChange::Image(i) => i.clone(),
    };
    format!("rollguard: {workloads} → {to}")
}

fn slack_wanted(report: &Report, sinks: &SinkConfig) -> bool {
    match sinks.slack_on {
        SlackOn::Always => true,
        SlackOn::Failure => markdown::is_failure(report.result),
    }
}

/// Record the run as a GitHub deployment of `sinks.environment` (status
/// `in_progress`) when that is wanted: on GitHub Actions, with a token and
/// an environment, not for a dry run. Returns the deployment (to keep in
/// [`Posted::github_deployment`]) and at most one warning.
pub async fn deployment_begin(
    sinks: &SinkConfig,
    ci: &CiContext,
    description: &str,
    dry_run: bool,
) -> (Option<Created>, Vec<String>) {
    let (Some(token), Some(environment)) = (&sinks.github_token, &sinks.environment) else {
        return (None, Vec::new());
    };
    if !deployments::wanted(ci, Some(token), Some(environment), dry_run) {
        return (None, Vec::new());
    }
    let http = match client(sinks.http_timeout) {
        Ok(c) => c,
        Err(e) => return (None, vec![format!("GitHub deployment: {e}")]),
    };
    match deployments::begin(
        &http,
        token,
        ci,
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
pub fn warning_lines(ci: &CiContext, warnings: &[String]) -> String {
    if ci.github.actions {
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
pub async fn publish(report: &Report, sinks: &SinkConfig, ci: &CiContext) -> Vec<String> {
    let p = publish_with(report, sinks, ci, &Posted::default()).await;
    if !p.stdout.is_empty() {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(p.stdout.as_bytes());
        let _ = out.flush();
    }
    p.warnings
}

/// Every CI sink, printing nothing: the caller prints `stdout`. What
/// `posted` holds is updated rather than posted anew: the GitHub
/// deployment gets its final status, the Slack message (bot token) is
/// edited.
pub async fn publish_with(
    report: &Report,
    sinks: &SinkConfig,
    ci: &CiContext,
    posted: &Posted,
) -> Published {
    let slack_thread = posted.slack_thread.clone();
    // Cluster and input text, safe for every text sink below.
    let report = &super::sanitise::report(report);
    let mut p = Published {
        slack_thread: slack_thread.clone(),
        ..Published::default()
    };
    let scrub = |s: &str| sinks.scrub(s);
    let warn = |p: &mut Published, s: String| p.warnings.push(sinks.scrub(&s));

    let needs_http = (ci.github.actions && sinks.github_token.is_some())
        || posted.github_deployment.is_some()
        || (ci.gitlab.ci && sinks.gitlab_token.is_some())
        || (slack_wanted(report, sinks) && slack_target(sinks).is_some());
    let http = if needs_http {
        match client(sinks.http_timeout) {
            Ok(c) => Some(c),
            Err(e) => {
                warn(&mut p, format!("CI sinks: {e}"));
                None
            }
        }
    } else {
        None
    };

    if ci.github.actions {
        p.stdout.push_str(&scrub(&github::annotation(report)));
        let outputs = ci.github.output_file.as_deref();
        match github::append_to(outputs, &scrub(&github::outputs_text(report))) {
            Ok(_) => {}
            Err(e) => warn(&mut p, format!("GitHub outputs: {e:#}")),
        }
        let summary = ci.github.step_summary_file.as_deref();
        match github::append_to(summary, &scrub(&github::summary_text(report))) {
            Ok(_) => {}
            Err(e) => warn(&mut p, format!("GitHub step summary: {e:#}")),
        }
        if let (Some(token), Some(http)) = (&sinks.github_token, &http) {
            match github::comment(http, report, token, ci, &scrub).await {
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
        (&posted.github_deployment, &sinks.github_token, &http)
    {
        match deployments::finish(
            http,
            token,
            ci,
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

    if ci.gitlab.ci
        && let (Some(token), Some(http)) = (&sinks.gitlab_token, &http)
    {
        match gitlab::note(http, report, token, ci, &scrub).await {
            Ok(NoteOutcome::Created(id)) => p.done.push(format!("GitLab: created MR note {id}")),
            Ok(NoteOutcome::Updated(id)) => p.done.push(format!("GitLab: updated MR note {id}")),
            Ok(NoteOutcome::NoMergeRequest) => {}
            Err(e) => warn(&mut p, format!("GitLab MR note not written: {e:#}")),
        }
    }

    if slack_wanted(report, sinks)
        && let (Some(target), Some(http)) = (slack_target(sinks), &http)
    {
        let job = ci.job_url();
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
    if ci.github.actions {
        for w in p.warnings.clone() {
            p.stdout.push_str(&github::warning_command(&w));
        }
    }
    p
}
