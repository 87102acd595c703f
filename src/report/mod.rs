//! The outcome of a run, and the sinks that publish it (console, JSON file,
//! GitHub, GitLab and Slack).

pub mod analysis;
pub mod console;
pub mod deployments;
pub mod events;
pub mod json;
// The CI sinks (GitHub, GitLab, Slack) and what they share.
pub mod escape;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod markdown;
pub mod publish;
pub mod sanitise;
pub mod slack;
pub mod story;
pub mod timeline;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::Finding;
use crate::model::Progress;

/// How the run ended, in one word (also GitHub's `result` output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conclusion {
    Succeeded,
    RolledBack,
    Failed,
    Invalid,
    /// A pre-flight check refused the change before anything was touched
    /// (exit code 2, like bad input, but the inputs were fine).
    Blocked,
    DryRun,
}

/// Where the run came from: repository, PR/MR, commit, actor, cluster.
/// Every field is optional (a local run has none).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RunContext {
    /// `owner/name` (GitHub) or the project path (GitLab).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// `#12` (GitHub PR) or `!7` (GitLab MR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// The commit, shortened to 8 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The kubeconfig context (or the cluster's auth method).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl RunContext {
    /// From the CI context; `cluster` as the caller knows it.
    pub fn new(ci: &crate::config::CiContext, cluster: Option<String>) -> RunContext {
        let get = |o: &Option<String>| o.clone().filter(|v| !v.trim().is_empty());
        let (gh, gl) = (&ci.github, &ci.gitlab);
        let change = if let Some(iid) = get(&gl.merge_request_iid) {
            Some(format!("!{iid}"))
        } else {
            // refs/pull/12/merge on pull_request events.
            get(&gh.git_ref).and_then(|r| {
                let n = r.strip_prefix("refs/pull/")?.split('/').next()?.to_string();
                n.chars()
                    .all(|c| c.is_ascii_digit())
                    .then(|| format!("#{n}"))
            })
        };
        RunContext {
            repository: get(&gh.repository).or_else(|| get(&gl.project_path)),
            change,
            commit: get(&gh.sha)
                .or_else(|| get(&gl.commit_sha))
                .map(|c| c.chars().take(8).collect()),
            actor: get(&gh.actor).or_else(|| get(&gl.user_login)),
            cluster,
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &RunContext::default()
    }
}

/// The rollback, when one was attempted (or deliberately not).
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    pub attempted: bool,
    pub confirmed: bool,
    pub detail: String,
}

/// Everything a sink needs. Never holds a secret.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rollguard_version: &'static str,
    pub result: Conclusion,
    pub exit_code: i32,
    /// One line: what happened.
    pub headline: String,
    pub workload: String,
    pub namespace: Option<String>,
    pub container: Option<String>,
    pub previous_image: Option<String>,
    pub image: Option<String>,
    pub version_label: Option<String>,
    pub version: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    /// The cause in one line (failures only).
    pub cause: Option<String>,
    pub findings: Vec<Finding>,
    pub rollback: Option<Rollback>,
    pub progress: Option<Progress>,
    /// How long the new pods were observed stable (success only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stability: Option<String>,
    /// What the canary step exposed and how it ended ("canary: 1 of 4 pods for 45s, failed").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    pub revision: Option<String>,
    /// Non-secret inputs as given.
    pub inputs: BTreeMap<String, String>,
    pub patch: Option<Value>,
    /// The pod template as it was before our patch.
    pub previous_template: Option<Value>,
    /// Old vs new ready pods over the rollout's time (the Mermaid chart of
    /// the Markdown sinks); empty when not tracked.
    pub timeline: Vec<timeline::Sample>,
    /// The workload of the timeline, in a run of several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_of: Option<String>,
    /// The revision that serves after a rollback (the restored one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_revision: Option<String>,
    /// A short excerpt of the failing workload's events, common success
    /// events left out (failures only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Repository, PR/MR, commit, actor, cluster.
    #[serde(skip_serializing_if = "RunContext::is_empty")]
    pub context: RunContext,
    /// One entry per workload when the run rolled a StatefulSet, DaemonSet,
    /// ReplicationController or several workloads (empty for the classic
    /// single-Deployment run). The top-level fields above then summarise:
    /// for one workload they are that workload's; for a group `workload`
    /// lists them all, `cause`/`findings` are those of the workloads that
    /// failed (each summary prefixed with its workload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadReport>,
    /// The metric gate's query, condition and evaluations (when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::Summary>,
}

/// The outcome of one workload of a run.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    /// `kind/name` as given.
    pub workload: String,
    pub result: Conclusion,
    pub exit_code: i32,
    pub headline: String,
    pub container: Option<String>,
    pub previous_image: Option<String>,
    pub image: Option<String>,
    pub version: Option<String>,
    pub cause: Option<String>,
    pub findings: Vec<Finding>,
    pub rollback: Option<Rollback>,
    pub progress: Option<Progress>,
    /// How long the new pods were observed stable (success only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stability: Option<String>,
    /// What the canary step exposed and how it ended ("canary: 1 of 4 pods for 45s, failed").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    pub revision: Option<String>,
    pub patch: Option<Value>,
    pub previous_template: Option<Value>,
    /// What was done beyond the patch, in order (ReplicationController
    /// scaling steps, resumed updates, pods deleted by a forced rollback).
    pub notes: Vec<String>,
    /// A short excerpt of this workload's events (failures only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The revision that serves after a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_revision: Option<String>,
    /// The metric gate's query, condition and evaluations (when it ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::Summary>,
}

impl WorkloadReport {
    /// How this workload's run ended: its result, exit code and headline.
    pub fn conclude(&mut self, result: Conclusion, code: crate::ExitCode, headline: String) {
        self.result = result;
        self.exit_code = code.code();
        self.headline = headline;
    }

    pub fn new(workload: String) -> WorkloadReport {
        WorkloadReport {
            workload,
            result: Conclusion::Invalid,
            exit_code: 2,
            headline: String::new(),
            container: None,
            previous_image: None,
            image: None,
            version: None,
            cause: None,
            findings: Vec::new(),
            rollback: None,
            progress: None,
            stability: None,
            canary: None,
            revision: None,
            patch: None,
            previous_template: None,
            notes: Vec::new(),
            events: Vec::new(),
            serving_revision: None,
            analysis: None,
        }
    }
}

impl Report {
    pub fn new(started_at: String) -> Report {
        Report {
            rollguard_version: env!("CARGO_PKG_VERSION"),
            result: Conclusion::Invalid,
            exit_code: 2,
            headline: String::new(),
            workload: String::new(),
            namespace: None,
            container: None,
            previous_image: None,
            image: None,
            version_label: None,
            version: None,
            started_at,
            finished_at: String::new(),
            cause: None,
            findings: Vec::new(),
            rollback: None,
            progress: None,
            stability: None,
            canary: None,
            revision: None,
            inputs: BTreeMap::new(),
            patch: None,
            previous_template: None,
            timeline: Vec::new(),
            timeline_of: None,
            serving_revision: None,
            events: Vec::new(),
            context: RunContext::default(),
            workloads: Vec::new(),
            analysis: None,
        }
    }
}

/// A place the report goes. A sink's failure is one warning, never the outcome.
pub trait Sink {
    fn name(&self) -> &'static str;
    fn emit(&mut self, report: &Report) -> anyhow::Result<()>;
}

/// Emit to every sink; failures become warnings.
pub fn publish(report: &Report, sinks: &mut [&mut dyn Sink]) {
    for s in sinks.iter_mut() {
        if let Err(e) = s.emit(report) {
            tracing::warn!("could not write the {} report: {e:#}", s.name());
        }
    }
}
