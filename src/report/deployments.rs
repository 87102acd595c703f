//! GitHub Deployments: with `environment` and a token allowed
//! `deployments: write`, the run is recorded as a deployment of that
//! environment (`POST /repos/{repo}/deployments`), with the statuses
//! `in_progress` when the rollout starts and `success` or `failure` at the
//! end (`POST …/deployments/{id}/statuses`, with the log URL and the
//! environment URL), so it shows in the repository's Environments view.
//! Like every sink, a failure here is one warning, never the outcome.

use anyhow::anyhow;
use reqwest::Method;
use serde_json::{Value, json};

use super::Report;
use super::escape::truncate_chars;
use super::github::GitHub;
use super::markdown;
use crate::config::CiContext;

/// GitHub's limit for a status description (characters).
const DESCRIPTION_MAX: usize = 140;

/// The deployment this run created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: u64,
}

/// The commit to deploy: the workflow's `GITHUB_SHA` (else its ref).
fn git_ref(ci: &CiContext) -> Option<String> {
    ci.github
        .sha
        .as_ref()
        .or(ci.github.git_ref.as_ref())
        .filter(|v| !v.trim().is_empty())
        .cloned()
}

/// `success` / `failure` for the run's conclusion (a dry run records
/// nothing, see [`wanted`]).
pub fn final_state(r: &Report) -> &'static str {
    if markdown::is_failure(r.result) {
        "failure"
    } else {
        "success"
    }
}

/// Is a deployment to be recorded at all?
pub fn wanted(
    ci: &CiContext,
    token: Option<&str>,
    environment: Option<&str>,
    dry_run: bool,
) -> bool {
    ci.github.actions
        && token.is_some_and(|t| !t.is_empty())
        && environment.is_some_and(|e| !e.is_empty())
        && !dry_run
        && ci.github_repository().is_some()
}

/// Create the deployment and post `in_progress`. `description` is our own
/// one-line text (workload → image).
pub async fn begin(
    http: &reqwest::Client,
    token: &str,
    ci: &CiContext,
    environment: &str,
    environment_url: Option<&str>,
    description: &str,
) -> anyhow::Result<Created> {
    let repo = ci
        .github
        .repository
        .clone()
        .ok_or_else(|| anyhow!("GITHUB_REPOSITORY is not set"))?;
    let git_ref = git_ref(ci).ok_or_else(|| anyhow!("GITHUB_SHA is not set"))?;
    let gh = GitHub {
        http,
        api: ci.github_api(),
        token,
        repo: repo.clone(),
    };
    let url = format!("{}/repos/{repo}/deployments", gh.api);
    let body = json!({
        "ref": git_ref,
        "environment": environment,
        "description": truncate_chars(description, DESCRIPTION_MAX),
        // The commit's checks are this very workflow: do not wait for them.
        "required_contexts": [],
        "auto_merge": false,
        "task": "deploy",
        "payload": { "tool": "rollguard" },
    });
    let (v, _) = gh.call(Method::POST, &url, Some(&body)).await?;
    let id = v["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("GitHub POST /repos/{repo}/deployments: no id in the answer"))?;
    let created = Created { id };
    status(
        &gh,
        &created,
        "in_progress",
        description,
        ci.job_url().as_deref(),
        environment_url,
    )
    .await?;
    Ok(created)
}

async fn status(
    gh: &GitHub<'_>,
    d: &Created,
    state: &str,
    description: &str,
    log_url: Option<&str>,
    environment_url: Option<&str>,
) -> anyhow::Result<()> {
    let url = format!("{}/repos/{}/deployments/{}/statuses", gh.api, gh.repo, d.id);
    let mut body = json!({
        "state": state,
        "description": truncate_chars(description, DESCRIPTION_MAX),
    });
    if let Some(l) = log_url {
        body["log_url"] = Value::String(l.to_string());
    }
    if let Some(e) = environment_url {
        body["environment_url"] = Value::String(e.to_string());
    }
    if state == "success" {
        // Earlier deployments of this environment become inactive.
        body["auto_inactive"] = Value::Bool(true);
    }
    gh.call(Method::POST, &url, Some(&body)).await?;
    Ok(())
}

/// Post the final status (`success` or `failure`) for the report.
pub async fn finish(
    http: &reqwest::Client,
    token: &str,
    ci: &CiContext,
    d: &Created,
    environment_url: Option<&str>,
    r: &Report,
    scrub: &(dyn Fn(&str) -> String + Sync),
) -> anyhow::Result<&'static str> {
    let repo = ci
        .github
        .repository
        .clone()
        .ok_or_else(|| anyhow!("GITHUB_REPOSITORY is not set"))?;
    let gh = GitHub {
        http,
        api: ci.github_api(),
        token,
        repo,
    };
    let state = final_state(r);
    let description = scrub(&markdown::heading(r, DESCRIPTION_MAX));
    status(
        &gh,
        d,
        state,
        &description,
        ci.job_url().as_deref(),
        environment_url,
    )
    .await?;
    Ok(state)
}
