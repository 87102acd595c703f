//! The CI the run is in (GitHub Actions, GitLab CI, Cloud Build or none),
//! read once from its variables: where the run and its log are, the
//! repository, commit and PR/MR, the API to talk to and the runner's files.
//! The sinks and the deploy lock take this instead of the environment.
//!
//! Every value is kept as the CI set it, an empty one as unset; the
//! readers below trim where a value is compared or shown.

use super::env::{Env, var};

/// Which CI runs us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ci {
    GitHubActions,
    GitLabCi,
    CloudBuild,
    None,
}

/// GitHub Actions' variables (`GITHUB_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHub {
    /// `GITHUB_ACTIONS=true`: workflow commands, outputs and the summary apply.
    pub actions: bool,
    pub server_url: Option<String>,
    pub api_url: Option<String>,
    /// `owner/name`.
    pub repository: Option<String>,
    pub run_id: Option<String>,
    pub sha: Option<String>,
    /// `GITHUB_REF`: `refs/pull/12/merge` on pull_request events.
    pub git_ref: Option<String>,
    pub event_name: Option<String>,
    /// The event payload file (the PR number of pull_request events).
    pub event_path: Option<String>,
    pub actor: Option<String>,
    /// `GITHUB_OUTPUT`: the step outputs file.
    pub output_file: Option<String>,
    /// `GITHUB_STEP_SUMMARY`: the step summary file.
    pub step_summary_file: Option<String>,
}

/// GitLab CI's variables (`CI_*`, `GITLAB_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitLab {
    /// `GITLAB_CI=true`: collapsible sections and the MR note apply.
    pub ci: bool,
    pub job_url: Option<String>,
    /// `CI_API_V4_URL`.
    pub api_url: Option<String>,
    /// `CI_PROJECT_ID` (a number).
    pub project_id: Option<String>,
    /// `CI_PROJECT_PATH`: `group/project`.
    pub project_path: Option<String>,
    /// `CI_MERGE_REQUEST_IID` (a number; merge request pipelines only).
    pub merge_request_iid: Option<String>,
    pub commit_sha: Option<String>,
    pub user_login: Option<String>,
}

/// Where this run comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiContext {
    pub github: GitHub,
    pub gitlab: GitLab,
    /// Cloud Build's `BUILD_ID`.
    pub cloud_build_id: Option<String>,
    /// `HOSTNAME` (else `/etc/hostname` is read when a name is needed).
    pub hostname: Option<String>,
}

/// GitHub's public API, when `GITHUB_API_URL` is not set.
pub const GITHUB_API: &str = "https://api.github.com";

impl CiContext {
    pub fn from_env(env: &Env) -> CiContext {
        let v = |k: &str| var(env, k);
        CiContext {
            github: GitHub {
                actions: env.get("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
                server_url: v("GITHUB_SERVER_URL"),
                api_url: v("GITHUB_API_URL"),
                repository: v("GITHUB_REPOSITORY"),
                run_id: v("GITHUB_RUN_ID"),
                sha: v("GITHUB_SHA"),
                git_ref: v("GITHUB_REF"),
                event_name: v("GITHUB_EVENT_NAME"),
                event_path: v("GITHUB_EVENT_PATH"),
                actor: v("GITHUB_ACTOR"),
                output_file: v("GITHUB_OUTPUT"),
                step_summary_file: v("GITHUB_STEP_SUMMARY"),
            },
            gitlab: GitLab {
                ci: env.get("GITLAB_CI").is_some_and(|v| v == "true"),
                job_url: v("CI_JOB_URL"),
                api_url: v("CI_API_V4_URL"),
                project_id: v("CI_PROJECT_ID"),
                project_path: v("CI_PROJECT_PATH"),
                merge_request_iid: v("CI_MERGE_REQUEST_IID"),
                commit_sha: v("CI_COMMIT_SHA"),
                user_login: v("GITLAB_USER_LOGIN"),
            },
            cloud_build_id: v("BUILD_ID"),
            hostname: v("HOSTNAME"),
        }
    }

    /// Which CI this is (GitHub Actions first when several say so).
    pub fn which(&self) -> Ci {
        if self.github.actions {
            Ci::GitHubActions
        } else if self.gitlab.ci {
            Ci::GitLabCi
        } else if self.cloud_build_id.is_some() {
            Ci::CloudBuild
        } else {
            Ci::None
        }
    }

    /// `SERVER/OWNER/NAME/actions/runs/ID` when the three are set.
    fn github_run_url(&self, trim: bool) -> Option<String> {
        let t = |o: &Option<String>| {
            o.as_deref()
                .map(|v| if trim { v.trim() } else { v })
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let g = &self.github;
        let (server, repo, run) = (t(&g.server_url)?, t(&g.repository)?, t(&g.run_id)?);
        Some(format!("{server}/{repo}/actions/runs/{run}"))
    }

    /// The CI job's URL: the GitHub run, else GitLab's job.
    pub fn job_url(&self) -> Option<String> {
        self.github_run_url(false)
            .or_else(|| self.gitlab.job_url.clone())
    }

    /// GitHub's REST API base, without a trailing `/`.
    pub fn github_api(&self) -> String {
        self.github
            .api_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| GITHUB_API.to_string())
    }

    /// The GitHub repository when it is `owner/name`.
    pub fn github_repository(&self) -> Option<&str> {
        self.github
            .repository
            .as_deref()
            .filter(|r| r.contains('/'))
    }

    /// Who made this change, for the workload's change-cause: the CI job
    /// URL, Cloud Build's build, else the host name.
    pub fn run_origin(&self) -> String {
        if let Some(url) = self.job_url() {
            return url;
        }
        if let Some(build) = &self.cloud_build_id {
            return format!("cloud build {build}");
        }
        self.host_name().unwrap_or_else(|| "unknown host".into())
    }

    /// Who holds the deploy lock: the GitHub run URL, GitLab's job URL,
    /// else `HOST pid N` (this process).
    pub fn lock_identity(&self) -> String {
        if let Some(url) = self.github_run_url(true) {
            return url;
        }
        if let Some(url) = self
            .gitlab
            .job_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            return url.to_string();
        }
        let host = self
            .hostname
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .or_else(etc_hostname)
            .unwrap_or_else(|| "localhost".into());
        format!("{host} pid {}", std::process::id())
    }

    fn host_name(&self) -> Option<String> {
        self.hostname.clone().or_else(etc_hostname)
    }
}

/// The machine's name from `/etc/hostname` (containers have no `HOSTNAME` at times).
fn etc_hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(pairs: &[(&str, &str)]) -> CiContext {
        let env: Env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CiContext::from_env(&env)
    }

    #[test]
    fn identities_and_origins() {
        let gh = ci(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "42"),
        ]);
        assert_eq!(gh.which(), Ci::GitHubActions);
        assert_eq!(gh.lock_identity(), "https://github.com/o/r/actions/runs/42");
        assert_eq!(gh.run_origin(), "https://github.com/o/r/actions/runs/42");
        assert_eq!(gh.github_api(), GITHUB_API);
        let gl = ci(&[("GITLAB_CI", "true"), ("CI_JOB_URL", "https://gitlab/j/1")]);
        assert_eq!(gl.which(), Ci::GitLabCi);
        assert_eq!(gl.lock_identity(), "https://gitlab/j/1");
        assert_eq!(gl.job_url().as_deref(), Some("https://gitlab/j/1"));
        let cb = ci(&[("BUILD_ID", "b-1"), ("HOSTNAME", "runner-7")]);
        assert_eq!(cb.which(), Ci::CloudBuild);
        assert_eq!(cb.run_origin(), "cloud build b-1");
        assert_eq!(
            cb.lock_identity(),
            format!("runner-7 pid {}", std::process::id())
        );
        let none = ci(&[("GITHUB_ACTIONS", "false"), ("GITHUB_API_URL", "http://x/")]);
        assert_eq!(none.which(), Ci::None);
        assert_eq!(none.github_api(), "http://x");
        assert!(
            none.lock_identity()
                .ends_with(&format!(" pid {}", std::process::id()))
        );
    }
}
