//! What a rollout's failure is made of: its cause, the signals pods and
//! controllers show, and the findings a person reads (cause, container, how
//! many pods, evidence, fix).

use serde::Serialize;

/// Why a rollout failed (or is stuck).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    ImageNotFound,
    ImageUnauthorized,
    InvalidImage,
    ImagePullTransient,
    ContainerConfig,
    CrashLoop,
    OomKilled,
    Unschedulable,
    ReadinessFailing,
    /// The new ReplicaSet cannot create its pods (quota, admission).
    ReplicaFailure,
    ProgressDeadline,
    /// Another writer changed the pod template during the rollout.
    Superseded,
    Timeout,
    /// The metric gate's query failed its condition (or found no data).
    MetricGate,
}

impl Cause {
    /// Fails the rollout at first sight.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Cause::ImageNotFound
                | Cause::ImageUnauthorized
                | Cause::InvalidImage
                | Cause::ContainerConfig
        )
    }

    pub fn title(self) -> &'static str {
        match self {
            Cause::ImageNotFound => "image not found",
            Cause::ImageUnauthorized => "image pull unauthorized",
            Cause::InvalidImage => "invalid image reference",
            Cause::ImagePullTransient => "image pull failing (transient errors)",
            Cause::ContainerConfig => "container configuration error",
            Cause::CrashLoop => "container keeps crashing",
            Cause::OomKilled => "container killed: out of memory",
            Cause::Unschedulable => "pods cannot be scheduled",
            Cause::ReadinessFailing => "readiness probe failing",
            Cause::ReplicaFailure => "new pods cannot be created",
            Cause::ProgressDeadline => "progress deadline exceeded",
            Cause::Superseded => "changed by someone else during the rollout",
            Cause::Timeout => "timed out",
            Cause::MetricGate => "metric gate failed",
        }
    }
}

/// What one pod (or container) of the new ReplicaSet shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub cause: Cause,
    pub pod: String,
    pub container: Option<String>,
    /// The exact status or event message.
    pub message: String,
    pub restarts: i32,
    pub exit_code: Option<i32>,
}

/// One diagnosed cause, deduplicated across pods.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cause: Cause,
    /// The cause in one line, for the CI log.
    pub summary: String,
    pub container: Option<String>,
    /// "3/3 new pods".
    pub pods: String,
    /// The exact status/event messages, one per distinct message.
    pub evidence: Vec<String>,
    /// Per pod: "api-5978c69877-mzxg6: ErrImagePull (restarts 0)".
    pub per_pod: Vec<String>,
    /// The previous instance's log tail (crash loops), secrets redacted.
    pub logs: Vec<String>,
    /// What to change, in one or two sentences.
    pub fix: String,
}
