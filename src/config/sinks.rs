//! What the report sinks need beyond the report: the tokens and webhook
//! (secrets), the Slack channel and when to post, the GitHub environment,
//! the report file, and the HTTP limits.

use std::time::Duration;

use super::env::{Env, var};

/// When to post to Slack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackOn {
    Failure,
    Always,
}

/// Slack's 429 handling: at most `max_retries` retries, each waiting
/// `Retry-After` seconds but never longer than `max_wait`.
#[derive(Debug, Clone, Copy)]
pub struct SlackRetry {
    pub max_retries: u32,
    pub max_wait: Duration,
}

impl Default for SlackRetry {
    fn default() -> Self {
        SlackRetry {
            max_retries: 3,
            max_wait: Duration::from_secs(10),
        }
    }
}

/// Slack's Web API base; `SLACK_API_URL` overrides it (for tests and
/// proxies).
pub const SLACK_API: &str = "https://slack.com/api";
/// The environment variable that overrides [`SLACK_API`].
pub const SLACK_API_VAR: &str = "SLACK_API_URL";

/// The sinks' settings, secrets included (never Debug-printed in full).
#[derive(Clone)]
pub struct SinkSettings {
    pub github_token: Option<String>,
    pub gitlab_token: Option<String>,
    pub slack_webhook: Option<String>,
    pub slack_token: Option<String>,
    pub slack_channel: Option<String>,
    pub slack_on: SlackOn,
    /// Other secret values to keep out of every output (e.g. the kube
    /// token, a password from the kubeconfig).
    pub extra_secrets: Vec<String>,
    pub slack_retry: SlackRetry,
    /// Slack's Web API base for the bot token (`chat.postMessage`).
    pub slack_api: String,
    /// Per HTTP request.
    pub http_timeout: Duration,
    /// The GitHub environment to record a deployment for, and its URL.
    pub environment: Option<String>,
    pub environment_url: Option<String>,
    /// Where the JSON report goes.
    pub report_file: Option<String>,
}

impl std::fmt::Debug for SinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("SinkSettings")
            .field("github_token", &set(&self.github_token))
            .field("gitlab_token", &set(&self.gitlab_token))
            .field("slack_webhook", &set(&self.slack_webhook))
            .field("slack_token", &set(&self.slack_token))
            .field("slack_channel", &self.slack_channel)
            .field("slack_on", &self.slack_on)
            .field("environment", &self.environment)
            .field("report_file", &self.report_file)
            .finish_non_exhaustive()
    }
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings {
            github_token: None,
            gitlab_token: None,
            slack_webhook: None,
            slack_token: None,
            slack_channel: None,
            slack_on: SlackOn::Failure,
            extra_secrets: Vec::new(),
            slack_retry: SlackRetry::default(),
            slack_api: SLACK_API.to_string(),
            http_timeout: Duration::from_secs(15),
            environment: None,
            environment_url: None,
            report_file: None,
        }
    }
}

impl SinkSettings {
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
}

/// `SLACK_API_URL`, else Slack's API.
pub(super) fn slack_api(env: &Env) -> String {
    var(env, SLACK_API_VAR).unwrap_or_else(|| SLACK_API.to_string())
}
