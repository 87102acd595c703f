//! GitLab CI: collapsible log sections and the sticky merge request note
//! (upserted with a `PRIVATE-TOKEN`, same hidden marker as GitHub).

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use super::Report;
use super::http::send_json;
use super::markdown;
use crate::config::CiContext;

/// A section name: letters, digits, `_ . -` only.
pub fn section_name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() { "rollguard".into() } else { n }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Start a collapsible section (with its newline). The header is printed
/// as given: keep cluster text out of it or escape it first.
pub fn section_start(name: &str, header: &str, collapsed: bool) -> String {
    let header = header.replace(['\r', '\n', '\x1b'], " ");
    format!(
        "\x1b[0Ksection_start:{}:{}{}\r\x1b[0K{header}\n",
        unix_now(),
        section_name(name),
        if collapsed { "[collapsed=true]" } else { "" }
    )
}

/// End a section (with its newline).
pub fn section_end(name: &str) -> String {
    format!(
        "\x1b[0Ksection_end:{}:{}\r\x1b[0K\n",
        unix_now(),
        section_name(name)
    )
}

/// What happened to the MR note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteOutcome {
    Created(u64),
    Updated(u64),
    /// Not a merge request pipeline.
    NoMergeRequest,
}

/// A minimal GitLab REST client for one merge request's notes.
pub struct GitLab<'a> {
    pub http: &'a reqwest::Client,
    /// `CI_API_V4_URL`, without a trailing `/`.
    pub api: String,
    pub token: &'a str,
    pub project: String,
    pub iid: String,
}

impl GitLab<'_> {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(Value, reqwest::header::HeaderMap)> {
        let url = format!("{}{path}", self.api);
        let shown = path.split('?').next().unwrap_or("");
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("PRIVATE-TOKEN", self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        send_json("GitLab", &method, shown, req).await
    }

    fn notes_path(&self) -> String {
        format!(
            "/projects/{}/merge_requests/{}/notes",
            self.project, self.iid
        )
    }

    /// Every note of the MR, following `X-Next-Page`.
    async fn notes(&self) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut page = "1".to_string();
        for _ in 0..100 {
            let path = format!("{}?per_page=100&page={page}", self.notes_path());
            let (v, headers) = self.call(Method::GET, &path, None).await?;
            all.extend(v.as_array().cloned().unwrap_or_default());
            let next = headers
                .get("x-next-page")
                .and_then(|h| h.to_str().ok())
                .map(str::trim)
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            match next {
                Some(n) if n != page => page = n.to_string(),
                _ => break,
            }
        }
        Ok(all)
    }

    /// Our user id (`GET /user` works for personal, project and group
    /// access tokens); `None` when it cannot be told.
    async fn identity(&self) -> Option<u64> {
        self.call(Method::GET, "/user", None)
            .await
            .ok()
            .and_then(|(v, _)| v["id"].as_u64())
    }

    /// Update our note that carries `marker`, else create one. System notes
    /// are never candidates.
    pub async fn upsert_note(&self, marker: &str, body: &str) -> anyhow::Result<NoteOutcome> {
        let me = self.identity().await;
        let notes = self.notes().await?;
        let ours = notes.iter().find(|n| {
            n["system"].as_bool() != Some(true)
                && n["body"].as_str().is_some_and(|b| b.contains(marker))
                && me.is_none_or(|id| n["author"]["id"].as_u64() == Some(id))
        });
        let payload = json!({ "body": body });
        match ours.and_then(|n| n["id"].as_u64()) {
            Some(id) => {
                let path = format!("{}/{id}", self.notes_path());
                self.call(Method::PUT, &path, Some(&payload)).await?;
                Ok(NoteOutcome::Updated(id))
            }
            None => {
                let (v, _) = self
                    .call(Method::POST, &self.notes_path(), Some(&payload))
                    .await?;
                Ok(NoteOutcome::Created(v["id"].as_u64().unwrap_or(0)))
            }
        }
    }
}

/// The MR note body for this report.
pub fn note_body(r: &Report, ci: &CiContext) -> String {
    markdown::render(
        r,
        &markdown::Options {
            marker: Some(markdown::marker(r)),
            max_len: markdown::GITLAB_NOTE_LIMIT,
            job_url: ci.job_url(),
        },
    )
}

/// Post or update the sticky MR note.
pub async fn note(
    http: &reqwest::Client,
    r: &Report,
    token: &str,
    ci: &CiContext,
    scrub: &(dyn Fn(&str) -> String + Sync),
) -> anyhow::Result<NoteOutcome> {
    let g = &ci.gitlab;
    let (Some(api), Some(project), Some(iid)) = (
        g.api_url.clone(),
        g.project_id.clone(),
        g.merge_request_iid.clone(),
    ) else {
        return Ok(NoteOutcome::NoMergeRequest);
    };
    if !project.chars().all(|c| c.is_ascii_digit()) || !iid.chars().all(|c| c.is_ascii_digit()) {
        bail!("CI_PROJECT_ID and CI_MERGE_REQUEST_IID must be numbers");
    }
    let gl = GitLab {
        http,
        api: api.trim_end_matches('/').to_string(),
        token,
        project,
        iid,
    };
    let body = scrub(&note_body(r, ci));
    gl.upsert_note(&markdown::marker(r), &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        let s = section_start("roll out api", "Rolling out\n::x", true);
        assert!(s.starts_with("\x1b[0Ksection_start:"));
        assert!(s.contains(":roll_out_api[collapsed=true]\r\x1b[0KRolling out ::x\n"));
        let e = section_end("roll out api");
        assert!(e.starts_with("\x1b[0Ksection_end:"));
        assert!(e.ends_with(":roll_out_api\r\x1b[0K\n"));
    }
}
