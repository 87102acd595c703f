//! GitHub Actions: step outputs (`GITHUB_OUTPUT`), the step summary
//! (`GITHUB_STEP_SUMMARY`), workflow commands on stdout (`::add-mask::`,
//! `::error`, `::group::`), and the sticky pull request comment.

use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;

use anyhow::{Context as _, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::Report;
use super::escape::{command_data, command_property, truncate};
use super::http::send_json;
use super::markdown::{self, result_word};
use crate::config::CiContext;

/// `::add-mask::` for every secret value (each line of a multi-line value
/// too), to print before anything else.
pub fn mask_commands<'a>(secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::new();
    for v in secrets {
        if v.trim().is_empty() {
            continue;
        }
        s.push_str(&format!("::add-mask::{}\n", command_data(v)));
        if v.contains('\n') {
            for line in v.lines().filter(|l| !l.trim().is_empty()) {
                s.push_str(&format!("::add-mask::{}\n", command_data(line)));
            }
        }
    }
    s
}

/// `::group::TITLE` line (with its newline).
pub fn group_start(title: &str) -> String {
    format!("::group::{}\n", command_data(title))
}

/// `::endgroup::` line (with its newline).
pub fn group_end() -> String {
    "::endgroup::\n".to_string()
}

/// `::error title=T::MESSAGE` line (with its newline).
pub fn error_command(title: &str, message: &str) -> String {
    format!(
        "::error title={}::{}\n",
        command_property(title),
        command_data(message)
    )
}

/// `::warning::MESSAGE` line (with its newline).
pub fn warning_command(message: &str) -> String {
    format!("::warning::{}\n", command_data(message))
}

/// The annotation for a failed run, or nothing: one line, the title says
/// workload and verdict, the message the cause (no repeated prefixes).
pub fn annotation(r: &Report) -> String {
    if !markdown::is_failure(r.result) {
        return String::new();
    }
    let (_, word) = markdown::outcome(r.result);
    let title = format!("rollguard: {} {word}", r.workload);
    let heading = markdown::heading(r, 1_000);
    let prefix = format!("{} {word}", r.workload);
    let message = heading
        .strip_prefix(&prefix)
        .map(|t| t.trim_start_matches(':').trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or(heading);
    let message = message.replace(['\r', '\n'], " ");
    error_command(&title, &truncate(&message, 4_000))
}

/// The step outputs, in order. After a confirmed rollback `image` and
/// `revision` name what serves now (the previous version); the attempted
/// ones are `attempted-image` and `attempted-revision`.
pub fn outputs(r: &Report) -> Vec<(&'static str, String)> {
    let rolled_back = r.rollback.as_ref().is_some_and(|rb| rb.attempted);
    let restored = r
        .rollback
        .as_ref()
        .is_some_and(|rb| rb.attempted && rb.confirmed);
    let (image, revision) = if restored {
        (
            r.previous_image.clone().unwrap_or_default(),
            r.serving_revision.clone().unwrap_or_default(),
        )
    } else {
        (
            r.image.clone().unwrap_or_default(),
            r.revision.clone().unwrap_or_default(),
        )
    };
    vec![
        ("result", result_word(r.result).to_string()),
        ("revision", revision),
        ("image", image),
        (
            "previous-image",
            r.previous_image.clone().unwrap_or_default(),
        ),
        ("attempted-image", r.image.clone().unwrap_or_default()),
        ("attempted-revision", r.revision.clone().unwrap_or_default()),
        ("rolled-back", rolled_back.to_string()),
        ("cause", r.cause.clone().unwrap_or_default()),
        (
            "report-file",
            r.inputs.get("report-file").cloned().unwrap_or_default(),
        ),
    ]
}

fn random_hex() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// One `GITHUB_OUTPUT` entry: `name=value\n`, or for a value with a line
/// break `name<<DELIM\nvalue\nDELIM\n` with a random delimiter that does not
/// occur in the value.
pub fn format_output(name: &str, value: &str) -> String {
    if !value.contains(['\n', '\r']) {
        return format!("{name}={value}\n");
    }
    let mut delim = format!("ghadelimiter_{}", random_hex());
    while value.contains(&delim) {
        delim = format!("ghadelimiter_{}", random_hex());
    }
    format!("{name}<<{delim}\n{value}\n{delim}\n")
}

fn append(path: &str, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => anyhow!(not_writable(path)),
            _ => anyhow!(e).context(format!("opening {path}")),
        })?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {path}"))?;
    Ok(())
}

/// Why a runner file cannot be written, and the fix. The runner creates the
/// files under `/github/file_commands` as its own user (uid 1001 on
/// GitHub's hosted runners) and mounts them into the action's container, so
/// only root (the image's default user) or that uid can write them.
fn not_writable(path: &str) -> String {
    use std::os::unix::fs::MetadataExt as _;
    // The effective uid, from /proc (a container mounts it); std has no getuid.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_string))
        })
        .map(|u| format!("uid {u}"))
        .unwrap_or_else(|| "a uid that may not write it".to_string());
    let owned = |m: std::fs::Metadata| format!("uid {} (mode {:o})", m.uid(), m.mode() & 0o7777);
    let owner = match std::fs::metadata(path) {
        Ok(m) => format!("belongs to {}", owned(m)),
        Err(_) => match std::path::Path::new(path).parent().map(std::fs::metadata) {
            Some(Ok(m)) => format!("does not exist and its directory belongs to {}", owned(m)),
            _ => "is not writable".to_string(),
        },
    };
    format!(
        "cannot write {path}: permission denied: it {owner} and rollguard runs as {uid}; \
         the runner creates these files as its own user, so run the action's container \
         as root (the image's default user) or as that uid"
    )
}

/// All outputs, as appended to `GITHUB_OUTPUT`.
pub fn outputs_text(r: &Report) -> String {
    outputs(r)
        .iter()
        .map(|(k, v)| format_output(k, v))
        .collect()
}

/// The step summary Markdown.
pub fn summary_text(r: &Report) -> String {
    markdown::render(
        r,
        &markdown::Options {
            marker: None,
            max_len: markdown::SUMMARY_LIMIT - 1024,
            job_url: None,
        },
    ) + "\n"
}

/// Append `text` to the runner's file at `path`, if it is set.
pub fn append_to(path: Option<&str>, text: &str) -> anyhow::Result<bool> {
    match path {
        Some(path) => append(path, text).map(|_| true),
        None => Ok(false),
    }
}

/// What happened to the PR comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentOutcome {
    Created(u64),
    Updated(u64),
    /// Not a pull request run (or no PR for the pushed commit).
    NoPullRequest,
}

/// A minimal GitHub REST client.
pub struct GitHub<'a> {
    pub http: &'a reqwest::Client,
    /// `GITHUB_API_URL`, without a trailing `/`.
    pub api: String,
    pub token: &'a str,
    /// `owner/name`.
    pub repo: String,
}

impl GitHub<'_> {
    pub(crate) async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(Value, reqwest::header::HeaderMap)> {
        // Never send the token anywhere but the API we were given.
        if !url.starts_with(&self.api) {
            bail!("refusing to follow a link outside {}", self.api);
        }
        let path = url[self.api.len()..].split('?').next().unwrap_or("");
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(b) = body {
            req = req.json(b);
        }
        send_json("GitHub", &method, path, req).await
    }

    /// The PR this run belongs to: from the event payload for
    /// `pull_request`/`pull_request_target` (and comments on PRs), from the
    /// commit's pulls for `push`.
    pub async fn pr_number(&self, ci: &CiContext) -> anyhow::Result<Option<u64>> {
        let event = ci.github.event_name.as_deref();
        let payload = || -> anyhow::Result<Value> {
            let path = ci
                .github
                .event_path
                .as_deref()
                .ok_or_else(|| anyhow!("GITHUB_EVENT_PATH is not set"))?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the event payload {path}"))?;
            serde_json::from_str(&text).context("parsing the event payload")
        };
        match event {
            Some("pull_request" | "pull_request_target" | "pull_request_review") => {
                Ok(payload()?["pull_request"]["number"].as_u64())
            }
            Some("issue_comment") => {
                let p = payload()?;
                Ok(if p["issue"]["pull_request"].is_object() {
                    p["issue"]["number"].as_u64()
                } else {
                    None
                })
            }
            Some("push") => {
                let Some(sha) = ci.github.sha.as_deref() else {
                    return Ok(None);
                };
                let url = format!("{}/repos/{}/commits/{sha}/pulls", self.api, self.repo);
                let (v, _) = self.call(Method::GET, &url, None).await?;
                let prs = v.as_array().cloned().unwrap_or_default();
                Ok(prs
                    .iter()
                    .find(|p| p["state"].as_str() == Some("open"))
                    .and_then(|p| p["number"].as_u64()))
            }
            _ => Ok(None),
        }
    }

    /// Our login (`GET /user`); `None` when the token cannot tell
    /// (installation tokens such as `GITHUB_TOKEN` get 403 there).
    async fn identity(&self) -> Option<String> {
        let url = format!("{}/user", self.api);
        self.call(Method::GET, &url, None)
            .await
            .ok()
            .and_then(|(v, _)| v["login"].as_str().map(str::to_string))
    }

    /// Every comment of the issue/PR, following `Link: rel="next"`.
    async fn comments(&self, pr: u64) -> anyhow::Result<Vec<Value>> {
        let mut url = format!(
            "{}/repos/{}/issues/{pr}/comments?per_page=100",
            self.api, self.repo
        );
        let mut all = Vec::new();
        for _ in 0..100 {
            let (v, headers) = self.call(Method::GET, &url, None).await?;
            all.extend(v.as_array().cloned().unwrap_or_default());
            let next = headers
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|h| h.to_str().ok())
                .find_map(next_link);
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(all)
    }

    /// Update our comment that carries `marker`, else create one.
    pub async fn upsert_comment(
        &self,
        pr: u64,
        marker: &str,
        body: &str,
    ) -> anyhow::Result<CommentOutcome> {
        let me = self.identity().await;
        let comments = self.comments(pr).await?;
        let ours = comments.iter().find(|c| {
            let has_marker = c["body"].as_str().is_some_and(|b| b.contains(marker));
            let user = &c["user"];
            let same = match &me {
                Some(login) => user["login"].as_str() == Some(login.as_str()),
                // An installation token (GITHUB_TOKEN or an App's) posts as
                // a bot (`github-actions[bot]`, `<app>[bot]`); humans cannot.
                None => {
                    user["login"].as_str() == Some("github-actions[bot]")
                        || (user["type"].as_str() == Some("Bot")
                            && user["login"].as_str().is_some_and(|l| l.ends_with("[bot]")))
                }
            };
            has_marker && same
        });
        let payload = json!({ "body": body });
        match ours.and_then(|c| c["id"].as_u64()) {
            Some(id) => {
                let url = format!("{}/repos/{}/issues/comments/{id}", self.api, self.repo);
                self.call(Method::PATCH, &url, Some(&payload)).await?;
                Ok(CommentOutcome::Updated(id))
            }
            None => {
                let url = format!("{}/repos/{}/issues/{pr}/comments", self.api, self.repo);
                let (v, _) = self.call(Method::POST, &url, Some(&payload)).await?;
                Ok(CommentOutcome::Created(v["id"].as_u64().unwrap_or(0)))
            }
        }
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let url = pieces.next()?.trim();
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        (is_next && url.starts_with('<') && url.ends_with('>'))
            .then(|| url[1..url.len() - 1].to_string())
    })
}

/// The PR comment body for this report.
pub fn comment_body(r: &Report, ci: &CiContext) -> String {
    markdown::render(
        r,
        &markdown::Options {
            marker: Some(markdown::marker(r)),
            max_len: markdown::COMMENT_LIMIT,
            job_url: ci.job_url(),
        },
    )
}

/// Post or update the sticky PR comment; `Ok(None)` when not applicable.
pub async fn comment(
    http: &reqwest::Client,
    r: &Report,
    token: &str,
    ci: &CiContext,
    scrub: &(dyn Fn(&str) -> String + Sync),
) -> anyhow::Result<CommentOutcome> {
    let Some(repo) = ci.github_repository() else {
        return Ok(CommentOutcome::NoPullRequest);
    };
    let gh = GitHub {
        http,
        api: ci.github_api(),
        token,
        repo: repo.to_string(),
    };
    let Some(pr) = gh.pr_number(ci).await? else {
        return Ok(CommentOutcome::NoPullRequest);
    };
    let body = scrub(&comment_body(r, ci));
    gh.upsert_comment(pr, &markdown::marker(r), &body)
        .await
        .map_err(|e| {
            if e.downcast_ref::<super::http::ApiError>()
                .is_some_and(|a| a.status == StatusCode::FORBIDDEN)
            {
                anyhow!(
                    "{e:#} (a pull request from a fork gets a read-only token, or the workflow lacks `permissions: pull-requests: write`; the step summary has the report)"
                )
            } else {
                e
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_multiline_safe() {
        assert_eq!(format_output("result", "failed"), "result=failed\n");
        let v = "line 1\nghadelimiter_x\nline 3";
        let s = format_output("cause", v);
        let first = s.lines().next().unwrap();
        let delim = first.strip_prefix("cause<<").unwrap();
        assert!(!v.contains(delim));
        assert!(s.ends_with(&format!("\n{delim}\n")));
    }

    #[test]
    fn link_header_next() {
        let h = r#"<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2")
        );
        assert_eq!(next_link(r#"<https://x/1>; rel="prev""#), None);
    }

    #[test]
    fn commands_are_escaped() {
        assert_eq!(
            error_command("a: b, c", "50%\nnext"),
            "::error title=a%3A b%2C c::50%25%0Anext\n"
        );
        assert_eq!(
            mask_commands(["tok", "", "a\nb"]),
            "::add-mask::tok\n::add-mask::a%0Ab\n::add-mask::a\n::add-mask::b\n"
        );
    }
}
