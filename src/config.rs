//! Inputs: the environment → typed, validated settings.
//!
//! Two spellings are read: GitHub's `INPUT_<NAME>` (upper-case, hyphens
//! kept: `INPUT_DRY-RUN`) and the plain `ROLLGUARD_<NAME>` (upper-case, `_`
//! for `-`: `ROLLGUARD_DRY_RUN`) for GitLab, Cloud Build and cron. An empty
//! value means unset. When both spellings are set, `ROLLGUARD_*` wins (it is
//! the more deliberate of the two). Everything here is pure: no cluster call.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::workload::WorkloadRef;

/// The environment, as name → value.
pub type Env = BTreeMap<String, String>;

/// One input as `--help` describes it.
pub struct InputSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub example: &'static str,
    pub help: &'static str,
    /// Never logged, never written to a report.
    pub secret: bool,
}

const fn input(
    name: &'static str,
    default: &'static str,
    example: &'static str,
    help: &'static str,
) -> InputSpec {
    InputSpec {
        name,
        default,
        example,
        help,
        secret: false,
    }
}

const fn secret(name: &'static str, example: &'static str, help: &'static str) -> InputSpec {
    InputSpec {
        name,
        default: "",
        example,
        help,
        secret: true,
    }
}

/// Every input rollguard knows, in the order `--help` lists them.
pub const INPUTS: &[InputSpec] = &[
    input(
        "workload",
        "(required)",
        "deployment/api",
        "the workload(s) to roll: [KIND/]NAME, several separated by commas or newlines (rolled out together, all rolled back if one fails); KIND is deployment (deploy), statefulset (sts), daemonset (ds) or replicationcontroller (rc)",
    ),
    input(
        "namespace",
        "the kubeconfig context's, else default",
        "shop",
        "namespace of the workload",
    ),
    input(
        "container",
        "the only container",
        "node-api-container",
        "container whose image changes (may be an init container); required when the pod has several",
    ),
    input(
        "image",
        "",
        "registry.example.com/api:v2",
        "the full new image reference (give image or tag, not both)",
    ),
    input(
        "tag",
        "",
        "v2",
        "replace only the tag/digest of the container's current image",
    ),
    input(
        "version",
        "the tag, made a valid label value",
        "v2",
        "value of the version label on the new pods",
    ),
    input(
        "version-label",
        "app.kubernetes.io/version",
        "app.kubernetes.io/version",
        "pod label that carries the version (never added to the selector)",
    ),
    input(
        "timeout",
        "5m",
        "90s",
        "how long the rollout may take before it is rolled back (exit 70)",
    ),
    input(
        "rollback",
        "true",
        "false",
        "roll back automatically when the rollout fails",
    ),
    input(
        "rollback-timeout",
        "max(timeout, 2m)",
        "3m",
        "how long to wait for the rollback to become healthy",
    ),
    input(
        "restart-threshold",
        "2",
        "3",
        "container restarts (crash loop, OOM kill) of a new pod that fail the rollout",
    ),
    input(
        "unschedulable-grace",
        "30s",
        "1m",
        "how long a new pod may stay unschedulable before the rollout fails",
    ),
    input(
        "stable-for",
        "20s",
        "1m",
        "every new pod must stay Ready this long after it became Ready, with no container exit or restart, before the rollout counts as done (0s: kubectl's rule); the workload's minReadySeconds if larger",
    ),
    input(
        "scale-up-grace",
        "5m",
        "10m",
        "how long to wait for a node that the cluster autoscaler is adding (TriggeredScaleUp) for an unschedulable new pod",
    ),
    input(
        "bake",
        "0s",
        "30s",
        "after success, keep watching the new pods this long; a restart or unready pod fails the rollout",
    ),
    input(
        "canary",
        "",
        "1",
        "Deployment or StatefulSet: first run this many pods of the new version (or a percentage of replicas, rounded up; fewer than replicas) beside the stable ones, judged for canary-hold, before the full rollout",
    ),
    input(
        "canary-hold",
        "2m (with canary)",
        "5m",
        "how long the canary's pods are watched once rolled out (with canary)",
    ),
    input(
        "kubeconfig",
        "$KUBECONFIG, ~/.kube/config, in-cluster",
        "/path/kubeconfig",
        "kubeconfig as a path, inline YAML or base64 of YAML",
    ),
    input(
        "context",
        "$KUBE_CONTEXT, else the kubeconfig's current context",
        "my-group/my-agent:prod",
        "kubeconfig context to use (needed when the kubeconfig has several contexts and none current, as the GitLab agent's)",
    ),
    input(
        "auth",
        "kubeconfig",
        "gke",
        "how to authenticate: kubeconfig (the kubeconfig input, $KUBECONFIG, ~/.kube/config, else the pod's service account), in-cluster (the pod's service account), gke (a token from the GCE metadata server, with cluster-endpoint and cluster-ca)",
    ),
    input(
        "cluster-endpoint",
        "",
        "https://203.0.113.10",
        "API server URL or address for auth=gke (gcloud container clusters describe CLUSTER --format='value(endpoint)')",
    ),
    input(
        "cluster-ca",
        "",
        "$CLUSTER_CA",
        "API server CA certificate for auth=gke: PEM or base64 of PEM (value(masterAuth.clusterCaCertificate))",
    ),
    // Issue #8 (reliability): parsed in src/lock.rs / src/cancel.rs (reliability_inputs).
    input(
        "lock",
        "true",
        "false",
        "take a per-workload deploy lock (a Lease rollguard-<kind>-<name>) so concurrent runs never overlap",
    ),
    input(
        "lock-timeout",
        "10m",
        "2m",
        "how long to wait for another run's deploy lock before exiting 3 naming its holder",
    ),
    input(
        "on-cancel",
        "rollback",
        "leave",
        "on SIGTERM/SIGINT (a CI cancel): rollback (restore the previous template, exit 1; 3 if not confirmed) or leave",
    ),
    input(
        "dry-run",
        "false",
        "true",
        "validate, run the pre-flight checks and print the patch; change nothing",
    ),
    input(
        "report-file",
        "",
        "rollguard-report.json",
        "write a JSON report of the run to this file",
    ),
    input(
        "verify-image",
        "true",
        "false",
        "pre-flight: check that the new image's tag exists in its registry (missing → exit 2, unreachable → warning)",
    ),
    input(
        "registry-auth",
        "$DOCKER_CONFIG/config.json, ~/.docker/config.json",
        "/home/runner/.docker/config.json",
        "docker config file with registry credentials for verify-image (imagePullSecrets are read too)",
    ),
    input(
        "insecure-registries",
        "",
        "registry.internal:5000,10.0.0.5:5000",
        "comma-separated registries spoken to over plain HTTP (loopback registries always are)",
    ),
    input(
        "pin-digest",
        "false",
        "true",
        "deploy repo:tag@sha256:… with the digest verify-image found, so the rollout and a rollback run exactly that image",
    ),
    input(
        "capacity-check",
        "fail",
        "warn",
        "pre-flight: can the surge pods be scheduled on the nodes? fail (exit 2), warn, or off",
    ),
    secret(
        "github-token",
        "${{ github.token }}",
        "GitHub token for the pull request comment (secret)",
    ),
    secret(
        "gitlab-token",
        "$GITLAB_TOKEN",
        "GitLab access token (scope api) for the merge request note (secret)",
    ),
    secret(
        "slack-webhook",
        "https://hooks.slack.com/services/...",
        "Slack incoming webhook URL (secret)",
    ),
    secret(
        "slack-token",
        "xoxb-...",
        "Slack bot token for chat.postMessage (secret)",
    ),
    input(
        "slack-channel",
        "",
        "#deploys",
        "Slack channel for slack-token",
    ),
    input(
        "environment",
        "",
        "production",
        "GitHub environment to record a deployment for (with github-token and `permissions: deployments: write`): statuses in_progress, then success or failure, shown in the repository's Environments",
    ),
    input(
        "environment-url",
        "",
        "https://shop.example.com",
        "URL of the deployed service, shown on the GitHub deployment (with environment)",
    ),
    input(
        "slack-on",
        "failure",
        "always",
        "when to post to Slack: failure or always",
    ),
    input(
        "max-surge",
        "1",
        "25%",
        "replicationcontroller only: pods above replicas during the rolling update (number or percent)",
    ),
    input(
        "max-unavailable",
        "0",
        "1",
        "replicationcontroller only: ready pods below replicas allowed during the rolling update (number or percent)",
    ),
];

/// The raw inputs after name normalisation; every field a string, empty
/// values already dropped. Read through envy so the names live in one place.
#[derive(Debug, Default, Deserialize)]
struct RawInputs {
    workload: Option<String>,
    namespace: Option<String>,
    container: Option<String>,
    image: Option<String>,
    tag: Option<String>,
    version: Option<String>,
    #[serde(rename = "version-label")]
    version_label: Option<String>,
    timeout: Option<String>,
    rollback: Option<String>,
    #[serde(rename = "rollback-timeout")]
    rollback_timeout: Option<String>,
    #[serde(rename = "restart-threshold")]
    restart_threshold: Option<String>,
    #[serde(rename = "unschedulable-grace")]
    unschedulable_grace: Option<String>,
    bake: Option<String>,
    #[serde(rename = "stable-for")]
    stable_for: Option<String>,
    canary: Option<String>,
    #[serde(rename = "canary-hold")]
    canary_hold: Option<String>,
    #[serde(rename = "scale-up-grace")]
    scale_up_grace: Option<String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    auth: Option<String>,
    #[serde(rename = "cluster-endpoint")]
    cluster_endpoint: Option<String>,
    #[serde(rename = "cluster-ca")]
    cluster_ca: Option<String>,
    #[serde(rename = "dry-run")]
    dry_run: Option<String>,
    #[serde(rename = "report-file")]
    report_file: Option<String>,
    #[serde(rename = "verify-image")]
    verify_image: Option<String>,
    #[serde(rename = "registry-auth")]
    registry_auth: Option<String>,
    #[serde(rename = "insecure-registries")]
    insecure_registries: Option<String>,
    #[serde(rename = "pin-digest")]
    pin_digest: Option<String>,
    #[serde(rename = "capacity-check")]
    capacity_check: Option<String>,
    #[serde(rename = "github-token")]
    github_token: Option<String>,
    #[serde(rename = "gitlab-token")]
    gitlab_token: Option<String>,
    #[serde(rename = "slack-webhook")]
    slack_webhook: Option<String>,
    #[serde(rename = "slack-token")]
    slack_token: Option<String>,
    #[serde(rename = "slack-channel")]
    slack_channel: Option<String>,
    #[serde(rename = "slack-on")]
    slack_on: Option<String>,
    environment: Option<String>,
    #[serde(rename = "environment-url")]
    environment_url: Option<String>,
    #[serde(rename = "max-surge")]
    max_surge: Option<String>,
    #[serde(rename = "max-unavailable")]
    max_unavailable: Option<String>,
}

/// What the new image is, as the user said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageChange {
    /// A full reference.
    Image(String),
    /// Only the tag (or `@digest`) of the current image changes.
    Tag(String),
}

/// Where the kubeconfig comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `KUBECONFIG`, `~/.kube/config`, then in-cluster.
    Infer {
        kubeconfig_env: Option<String>,
    },
    Path(String),
    /// Inline YAML (given as YAML or base64 of YAML).
    Inline(String),
    /// `auth: in-cluster`: the pod's service account
    /// (`KUBERNETES_SERVICE_HOST`/`_PORT` as read from the environment).
    InCluster {
        host: Option<String>,
        port: Option<String>,
    },
    /// `auth: gke`: an access token from the GCE metadata server for the
    /// cluster at `endpoint` (an `https://` URL) trusting `ca_pem`.
    Gke {
        endpoint: String,
        ca_pem: String,
        /// `http://HOST[:PORT]` of the metadata server (`GCE_METADATA_HOST`
        /// overrides `metadata.google.internal`, as in Google's client libraries).
        metadata_base: String,
    },
}

/// When to post to Slack (issue #4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackOn {
    Failure,
    Always,
}

/// Secrets: kept out of Debug output and reports.
#[derive(Clone, Default)]
pub struct Secrets {
    pub github_token: Option<String>,
    pub gitlab_token: Option<String>,
    pub slack_webhook: Option<String>,
    pub slack_token: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field("github_token", &set(&self.github_token))
            .field("gitlab_token", &set(&self.gitlab_token))
            .field("slack_webhook", &set(&self.slack_webhook))
            .field("slack_token", &set(&self.slack_token))
            .finish()
    }
}

impl Secrets {
    /// Every secret value that is set (to mask or to check for leaks).
    pub fn values(&self) -> Vec<&str> {
        [
            &self.github_token,
            &self.gitlab_token,
            &self.slack_webhook,
            &self.slack_token,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
    }
}

/// Validated settings for one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The first (often the only) workload of `workloads`.
    pub workload: WorkloadRef,
    /// Every workload named by the `workload` input, in order.
    pub workloads: Vec<WorkloadRef>,
    /// ReplicationController rolling update: surge above replicas.
    pub max_surge: IntOrPercent,
    /// ReplicationController rolling update: ready pods below replicas allowed.
    pub max_unavailable: IntOrPercent,
    pub namespace: Option<String>,
    pub container: Option<String>,
    pub change: ImageChange,
    /// Explicit `version`; when None it is derived from the new image's tag.
    pub version: Option<String>,
    pub version_label: String,
    pub timeout: Duration,
    pub rollback: bool,
    pub rollback_timeout: Duration,
    pub restart_threshold: i32,
    pub unschedulable_grace: Duration,
    pub bake: Duration,
    /// How long each new pod must stay Ready, without a container exit or
    /// restart, from its own Ready transition (0: kubectl's rule).
    pub stable_for: Duration,
    /// `canary` and `canary-hold`: run the new version on a few pods first.
    pub canary: Option<Canary>,
    /// How long to wait for a node the cluster autoscaler said it is adding.
    pub scale_up_grace: Duration,
    pub kubeconfig: KubeconfigSource,
    pub context: Option<String>,
    pub dry_run: bool,
    pub report_file: Option<String>,
    pub slack_channel: Option<String>,
    pub slack_on: SlackOn,
    /// The GitHub environment to record a deployment for.
    pub environment: Option<String>,
    pub environment_url: Option<String>,
    pub secrets: Secrets,
    /// Unknown `INPUT_*` / `ROLLGUARD_*` names (warned about, not fatal).
    pub unknown: Vec<String>,
    /// Where this run comes from (CI job URL or host), for change-cause.
    pub run_origin: String,
    /// The pre-flight registry and capacity checks (issue #9).
    pub preflight: Preflight,
    /// Issue #8: `lock`, `lock-timeout`, `on-cancel` and the run identity (src/lock.rs).
    pub reliability: crate::lock::Options,
}

/// A count given as a number or a percentage of the replicas (`1`, `25%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i32),
    Percent(i32),
}

impl IntOrPercent {
    fn parse(input: &'static str, value: Option<&str>, default: i32) -> Result<Self, InputError> {
        let Some(v) = value else {
            return Ok(IntOrPercent::Int(default));
        };
        let parsed = match v.strip_suffix('%') {
            Some(p) => p
                .parse::<i32>()
                .ok()
                .filter(|p| (0..=100).contains(p))
                .map(IntOrPercent::Percent),
            None => v
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(IntOrPercent::Int),
        };
        parsed.ok_or_else(|| {
            bad(
                input,
                format!("\"{v}\" is not a whole number ≥ 0 or a percentage (e.g. 1 or 25%)"),
            )
        })
    }

    fn is_zero(self) -> bool {
        matches!(self, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }

    /// The count for `replicas`; percentages round up (`round_up`, as for
    /// maxSurge) or down (as for maxUnavailable).
    pub fn resolve(self, replicas: i32, round_up: bool) -> i32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let x = replicas as i64 * p as i64;
                let n = if round_up { (x + 99) / 100 } else { x / 100 };
                n as i32
            }
        }
    }
}

/// The canary step: how many pods of the new version, and how long they are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canary {
    pub pods: IntOrPercent,
    pub hold: Duration,
}

/// `canary` and `canary-hold`; only for one Deployment or StatefulSet (a
/// ReplicationController's update and a DaemonSet's per-node pods have no
/// way to run a few new pods beside the stable ones; a group would need one
/// verdict over several canaries).
fn canary_settings(
    canary: Option<&str>,
    hold: Option<&str>,
    workloads: &[WorkloadRef],
) -> Result<Option<Canary>, InputError> {
    let Some(v) = canary else {
        if hold.is_some() {
            return Err(bad("canary-hold", "needs the canary input"));
        }
        return Ok(None);
    };
    let pods = IntOrPercent::parse("canary", Some(v), 0)?;
    if pods.is_zero() {
        return Err(bad(
            "canary",
            format!("\"{v}\" must be at least 1 pod or 1%"),
        ));
    }
    if workloads.len() > 1 {
        return Err(bad(
            "canary",
            "runs one workload at a time: name a single workload",
        ));
    }
    if let Some(w) = workloads.first()
        && !matches!(
            w.kind,
            crate::workload::Kind::Deployment | crate::workload::Kind::StatefulSet
        )
    {
        return Err(bad(
            "canary",
            format!(
                "is for a Deployment or StatefulSet, not {w}: a {} has no way to run a few new pods beside the stable ones",
                w.kind.as_str()
            ),
        ));
    }
    let hold = parse_duration("canary-hold", hold, "2m")?;
    Ok(Some(Canary { pods, hold }))
}

/// What `capacity-check` does when the surge pods cannot be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityCheck {
    Fail,
    Warn,
    Off,
}

/// Settings of the pre-flight checks (issue #9).
#[derive(Debug, Clone)]
pub struct Preflight {
    pub verify_image: bool,
    /// The docker config file to read credentials from: `registry-auth`,
    /// else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub docker_config: Option<String>,
    /// True when `registry-auth` named the file (a missing file is warned about).
    pub docker_config_explicit: bool,
    /// `host[:port]` spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    pub pin_digest: bool,
    pub capacity_check: CapacityCheck,
    /// The GCE metadata server (`GCE_METADATA_HOST`, as Google's libraries read it).
    pub gce_metadata_host: String,
}

/// A bad input: one line naming the input and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid input \"{input}\": {problem}")]
pub struct InputError {
    pub input: &'static str,
    pub problem: String,
}

fn bad(input: &'static str, problem: impl Into<String>) -> InputError {
    // Values are quoted in problems: one line, no terminal controls, short.
    InputError {
        input,
        problem: crate::text::quote(&problem.into(), 400),
    }
}

/// The longest `timeout`, `rollback-timeout`, `bake`, `unschedulable-grace`
/// and `lock-timeout` accepted: a CI job that waits longer is a mistake.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The input name a variable spells, if it is one of ours.
fn input_name(var: &str) -> Option<String> {
    if let Some(rest) = var.strip_prefix("INPUT_") {
        // GitHub turns spaces into '_' and keeps hyphens; our names have no
        // spaces, so an '_' can only be a ROLLGUARD-style spelling: accept it.
        return Some(rest.to_ascii_lowercase().replace('_', "-"));
    }
    var.strip_prefix("ROLLGUARD_")
        .map(|rest| rest.to_ascii_lowercase().replace('_', "-"))
}

/// Does the environment ask for help (the binary also checks argv)?
pub fn is_known_input(name: &str) -> bool {
    INPUTS.iter().any(|i| i.name == name)
}

/// Read and validate every input. No cluster call happens here.
pub fn from_env(env: &Env) -> Result<Settings, InputError> {
    let mut pairs: BTreeMap<String, String> = BTreeMap::new();
    let mut unknown = Vec::new();
    // Which variable gave each input: two spellings of one input with
    // different values are an error naming both (no silent winner).
    let mut given_by: BTreeMap<String, String> = BTreeMap::new();
    for prefix in ["INPUT_", "ROLLGUARD_"] {
        for (var, value) in env.iter().filter(|(k, _)| k.starts_with(prefix)) {
            let Some(name) = input_name(var) else {
                continue;
            };
            if !is_known_input(&name) {
                unknown.push(var.clone());
                continue;
            }
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if let Some(previous) = pairs.get(&name)
                && previous != value
            {
                let first = given_by.get(&name).cloned().unwrap_or_default();
                let spec = INPUTS.iter().find(|i| i.name == name);
                return Err(bad(
                    spec.map(|i| i.name).unwrap_or("environment"),
                    format!("{first} and {var} are both set, to different values: set one"),
                ));
            }
            given_by.insert(name.clone(), var.clone());
            pairs.insert(name, value.to_string());
        }
    }
    let raw: RawInputs = envy::from_iter(pairs).map_err(|e| bad("environment", e.to_string()))?;
    settle(raw, env, unknown)
}

/// The process environment as an [`Env`] (issue #8): a non-UTF-8 value of
/// one of our inputs (`INPUT_*`, `ROLLGUARD_*`) or of a variable we read is
/// an error naming the variable (exit 2); other non-UTF-8 variables are
/// dropped.
pub fn env_from_os<I>(vars: I) -> Result<Env, InputError>
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    const READ: &[&str] = &[
        "KUBECONFIG",
        "KUBE_CONTEXT",
        "HOME",
        "DOCKER_CONFIG",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_TOKEN",
        "CI_JOB_URL",
    ];
    let mut env = Env::new();
    for (k, v) in vars {
        let Ok(k) = k.into_string() else { continue };
        match v.into_string() {
            Ok(v) => {
                env.insert(k, v);
            }
            Err(_)
                if k.starts_with("INPUT_")
                    || k.starts_with("ROLLGUARD_")
                    || READ.contains(&k.as_str()) =>
            {
                return Err(bad(
                    "environment",
                    format!("the value of {k} is not valid UTF-8"),
                ));
            }
            Err(_) => {}
        }
    }
    Ok(env)
}

fn parse_duration(
    input: &'static str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, InputError> {
    let v = value.unwrap_or(default);
    let d = humantime::parse_duration(v).map_err(|_| {
        bad(
            input,
            format!("\"{v}\" is not a duration (e.g. 90s, 5m, 1h30m)"),
        )
    })?;
    if d > MAX_DURATION {
        return Err(bad(
            input,
            format!("\"{v}\" is longer than the maximum of 24h"),
        ));
    }
    Ok(d)
}

fn parse_bool(input: &'static str, value: Option<&str>, default: bool) -> Result<bool, InputError> {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if ["true", "yes", "1", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["false", "no", "0", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(bad(
            input,
            format!("\"{v}\" is not a boolean (true or false)"),
        )),
    }
}

fn settle(raw: RawInputs, env: &Env, unknown: Vec<String>) -> Result<Settings, InputError> {
    let workloads = match raw.workload.as_deref() {
        None => return Err(bad("workload", "is required (e.g. deployment/api)")),
        Some(w) => crate::workload::parse_list(w).map_err(|p| bad("workload", p))?,
    };
    let workload = workloads[0].clone();
    let max_surge = IntOrPercent::parse("max-surge", raw.max_surge.as_deref(), 1)?;
    let max_unavailable =
        IntOrPercent::parse("max-unavailable", raw.max_unavailable.as_deref(), 0)?;
    if max_surge.is_zero() && max_unavailable.is_zero() {
        return Err(bad(
            "max-surge",
            "max-surge and max-unavailable cannot both be 0 (the rolling update could never make a step)",
        ));
    }
    let preflight = preflight_settings(&raw, env)?;
    if let Some(ns) = &raw.namespace
        && !is_dns_label(ns)
    {
        return Err(bad(
            "namespace",
            format!(
                "\"{ns}\" is not a valid namespace name (lower-case letters, digits and '-', at most 63)"
            ),
        ));
    }
    if let Some(c) = &raw.container
        && !is_dns_label(c)
    {
        return Err(bad(
            "container",
            format!("\"{c}\" is not a valid container name"),
        ));
    }
    let change = match (raw.image, raw.tag) {
        (Some(_), Some(_)) => return Err(bad("image", "give either image or tag, not both")),
        (None, None) => {
            return Err(bad(
                "image",
                "one of image or tag is required (e.g. image=example/api:v2 or tag=v2)",
            ));
        }
        (Some(i), None) => {
            crate::image::Reference::parse(&i).map_err(|p| bad("image", format!("\"{i}\" {p}")))?;
            ImageChange::Image(i)
        }
        (None, Some(t)) => {
            crate::image::validate_tag_or_digest(&t)
                .map_err(|p| bad("tag", format!("\"{t}\" {p}")))?;
            ImageChange::Tag(t)
        }
    };
    if let Some(v) = &raw.version
        && !is_label_value(v)
    {
        return Err(bad(
            "version",
            format!(
                "\"{v}\" is not a valid label value (at most 63 characters: letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
            ),
        ));
    }
    let version_label = raw
        .version_label
        .unwrap_or_else(|| "app.kubernetes.io/version".into());
    if let Err(p) = check_label_key(&version_label) {
        return Err(bad("version-label", format!("\"{version_label}\" {p}")));
    }
    if version_label == "pod-template-hash" {
        return Err(bad(
            "version-label",
            "\"pod-template-hash\" belongs to the Deployment controller",
        ));
    }
    let timeout = parse_duration("timeout", raw.timeout.as_deref(), "5m")?;
    if timeout.is_zero() {
        return Err(bad("timeout", "must be longer than 0s"));
    }
    let rollback = parse_bool("rollback", raw.rollback.as_deref(), true)?;
    let rollback_timeout = match raw.rollback_timeout.as_deref() {
        Some(v) => parse_duration("rollback-timeout", Some(v), "2m")?,
        None => timeout.max(Duration::from_secs(120)),
    };
    if rollback_timeout.is_zero() {
        return Err(bad(
            "rollback-timeout",
            "must be longer than 0s (the rollback could never be confirmed)",
        ));
    }
    let restart_threshold = match raw.restart_threshold.as_deref() {
        None => 2,
        Some(v) => match v.parse::<i32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(bad(
                    "restart-threshold",
                    format!("\"{v}\" is not a whole number of at least 1"),
                ));
            }
        },
    };
    let unschedulable_grace = parse_duration(
        "unschedulable-grace",
        raw.unschedulable_grace.as_deref(),
        "30s",
    )?;
    let bake = parse_duration("bake", raw.bake.as_deref(), "0s")?;
    let stable_for = parse_duration("stable-for", raw.stable_for.as_deref(), "20s")?;
    let canary = canary_settings(
        raw.canary.as_deref(),
        raw.canary_hold.as_deref(),
        &workloads,
    )?;
    let scale_up_grace = parse_duration("scale-up-grace", raw.scale_up_grace.as_deref(), "5m")?;
    let context = raw.context.or_else(|| {
        env.get("KUBE_CONTEXT")
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
    });
    let kubeconfig = cluster_source(
        raw.auth.as_deref(),
        raw.kubeconfig,
        raw.cluster_endpoint,
        raw.cluster_ca,
        env,
    )?;
    if context.is_some()
        && matches!(
            kubeconfig,
            KubeconfigSource::Gke { .. } | KubeconfigSource::InCluster { .. }
        )
    {
        return Err(bad(
            "context",
            "applies to auth=kubeconfig only (auth=gke and auth=in-cluster have no contexts)",
        ));
    }
    let dry_run = parse_bool("dry-run", raw.dry_run.as_deref(), false)?;
    let environment = raw
        .environment
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    if let Some(e) = &environment
        && (e.len() > 255 || e.chars().any(char::is_control))
    {
        return Err(bad(
            "environment",
            "must be one line of at most 255 characters",
        ));
    }
    let environment_url = raw
        .environment_url
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    if let Some(u) = &environment_url {
        if !(u.starts_with("https://") || u.starts_with("http://"))
            || u.contains(char::is_whitespace)
        {
            return Err(bad(
                "environment-url",
                format!("\"{u}\" must be an http:// or https:// URL"),
            ));
        }
        if environment.is_none() {
            return Err(bad(
                "environment-url",
                "needs environment (the GitHub environment the URL belongs to)",
            ));
        }
    }
    let slack_on = match raw
        .slack_on
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("failure") => SlackOn::Failure,
        Some("always") => SlackOn::Always,
        Some(v) => {
            return Err(bad(
                "slack-on",
                format!("\"{v}\" must be failure or always"),
            ));
        }
    };
    check_secret("github-token", raw.github_token.as_deref())?;
    check_secret("gitlab-token", raw.gitlab_token.as_deref())?;
    check_secret("slack-token", raw.slack_token.as_deref())?;
    if let Some(hook) = raw.slack_webhook.as_deref() {
        check_secret("slack-webhook", Some(hook))?;
        check_http_url(hook).map_err(|p| bad("slack-webhook", p))?;
    }
    if let Some(path) = raw.report_file.as_deref() {
        check_report_file(path).map_err(|p| bad("report-file", p))?;
    }
    Ok(Settings {
        workload,
        workloads,
        max_surge,
        max_unavailable,
        namespace: raw.namespace,
        container: raw.container,
        change,
        version: raw.version,
        version_label,
        timeout,
        rollback,
        rollback_timeout,
        restart_threshold,
        unschedulable_grace,
        bake,
        stable_for,
        canary,
        scale_up_grace,
        kubeconfig,
        context,
        dry_run,
        report_file: raw.report_file,
        slack_channel: raw.slack_channel,
        slack_on,
        environment,
        environment_url,
        secrets: Secrets {
            github_token: raw.github_token,
            gitlab_token: raw.gitlab_token,
            slack_webhook: raw.slack_webhook,
            slack_token: raw.slack_token,
        },
        unknown,
        run_origin: run_origin(env),
        preflight,
        reliability: crate::lock::options(env)?,
    })
}

/// A secret input must be one token: no whitespace or control characters
/// (a newline would also split the `::add-mask::` line that hides it).
/// The value itself is never quoted.
fn check_secret(input: &'static str, value: Option<&str>) -> Result<(), InputError> {
    match value {
        Some(v) if v.chars().any(|c| c.is_control() || c.is_whitespace()) => Err(bad(
            input,
            "contains whitespace or a control character (a line break?): give the secret as one line",
        )),
        _ => Ok(()),
    }
}

/// An `http://` or `https://` URL with a host (never quoted: it is a secret).
fn check_http_url(value: &str) -> Result<(), String> {
    match reqwest::Url::parse(value) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(())
        }
        Ok(u) => Err(format!(
            "must be an http(s):// URL (its scheme is {})",
            crate::text::quote(u.scheme(), 20)
        )),
        Err(e) => Err(format!("is not a URL ({e})")),
    }
}

/// The report file's directory must exist and take a new file: found out
/// now, not after the rollout.
fn check_report_file(path: &str) -> Result<(), String> {
    let p = std::path::Path::new(path);
    let quoted = crate::text::quote(path, 200);
    if p.is_dir() {
        return Err(format!("\"{quoted}\" is a directory, not a file"));
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("the directory of \"{quoted}\" does not exist"));
    }
    let probe = dir.join(format!(".rollguard-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!(
            "cannot write in the directory of \"{quoted}\" ({})",
            e.kind()
        )),
    }
}

/// The pre-flight inputs (issue #9).
fn preflight_settings(raw: &RawInputs, env: &Env) -> Result<Preflight, InputError> {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    let verify_image = parse_bool("verify-image", raw.verify_image.as_deref(), true)?;
    let pin_digest = parse_bool("pin-digest", raw.pin_digest.as_deref(), false)?;
    if pin_digest && !verify_image {
        return Err(bad(
            "pin-digest",
            "needs verify-image=true (the digest comes from the registry check)",
        ));
    }
    let capacity_check = match raw
        .capacity_check
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("fail") => CapacityCheck::Fail,
        Some("warn") => CapacityCheck::Warn,
        Some("off") => CapacityCheck::Off,
        Some(v) => {
            return Err(bad(
                "capacity-check",
                format!("\"{v}\" must be fail, warn or off"),
            ));
        }
    };
    let mut insecure_registries = Vec::new();
    for entry in raw.insecure_registries.iter().flat_map(|v| v.split(',')) {
        let e = entry.trim();
        let e = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"))
            .unwrap_or(e)
            .trim_end_matches('/');
        if e.is_empty() {
            continue;
        }
        if !e
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return Err(bad(
                "insecure-registries",
                format!("\"{e}\" is not a registry host[:port]"),
            ));
        }
        insecure_registries.push(e.to_ascii_lowercase());
    }
    let (docker_config, docker_config_explicit) = match &raw.registry_auth {
        Some(path) => (Some(path.clone()), true),
        None => (
            get("DOCKER_CONFIG")
                .map(|d| format!("{}/config.json", d.trim_end_matches('/')))
                .or_else(|| get("HOME").map(|h| format!("{h}/.docker/config.json"))),
            false,
        ),
    };
    Ok(Preflight {
        verify_image,
        docker_config,
        docker_config_explicit,
        insecure_registries,
        pin_digest,
        capacity_check,
        gce_metadata_host: get("GCE_METADATA_HOST")
            .unwrap_or_else(|| "metadata.google.internal".into()),
    })
}

/// The `auth` input with `kubeconfig`, `cluster-endpoint` and `cluster-ca`.
fn cluster_source(
    auth: Option<&str>,
    kubeconfig: Option<String>,
    endpoint: Option<String>,
    ca: Option<String>,
    env: &Env,
) -> Result<KubeconfigSource, InputError> {
    let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mode = auth.unwrap_or("kubeconfig").to_ascii_lowercase();
    if mode != "gke" {
        for (name, given) in [("cluster-endpoint", &endpoint), ("cluster-ca", &ca)] {
            if given.is_some() {
                return Err(bad(name, "is used with auth=gke only"));
            }
        }
    }
    if mode != "kubeconfig" && kubeconfig.is_some() {
        return Err(bad(
            "kubeconfig",
            format!("is not used with auth={mode} (use auth=kubeconfig)"),
        ));
    }
    match mode.as_str() {
        "kubeconfig" => Ok(match kubeconfig {
            None => KubeconfigSource::Infer {
                kubeconfig_env: get("KUBECONFIG").map(str::to_string),
            },
            Some(k) => classify_kubeconfig(&k).map_err(|p| bad("kubeconfig", p))?,
        }),
        "in-cluster" => Ok(KubeconfigSource::InCluster {
            host: get("KUBERNETES_SERVICE_HOST").map(str::to_string),
            port: get("KUBERNETES_SERVICE_PORT").map(str::to_string),
        }),
        "gke" => {
            let endpoint = endpoint.ok_or_else(|| {
                bad(
                    "cluster-endpoint",
                    "is required with auth=gke (the cluster's endpoint, e.g. from gcloud container clusters describe CLUSTER --format='value(endpoint)')",
                )
            })?;
            let endpoint = cluster_endpoint(&endpoint).map_err(|p| bad("cluster-endpoint", p))?;
            let ca = ca.ok_or_else(|| {
                bad(
                    "cluster-ca",
                    "is required with auth=gke (PEM or base64 of PEM, e.g. --format='value(masterAuth.clusterCaCertificate)')",
                )
            })?;
            let ca_pem = cluster_ca_pem(&ca).map_err(|p| bad("cluster-ca", p))?;
            let host = get("GCE_METADATA_HOST").unwrap_or("metadata.google.internal");
            let metadata_base = if host.contains("://") {
                host.trim_end_matches('/').to_string()
            } else {
                format!("http://{}", host.trim_end_matches('/'))
            };
            Ok(KubeconfigSource::Gke {
                endpoint,
                ca_pem,
                metadata_base,
            })
        }
        other => Err(bad(
            "auth",
            format!("\"{other}\" must be kubeconfig, in-cluster or gke"),
        )),
    }
}

/// `https://HOST[:PORT]`, or a bare host / IP (as GKE prints it) made one.
fn cluster_endpoint(value: &str) -> Result<String, String> {
    let url = if value.contains("://") {
        value.to_string()
    } else {
        format!("https://{value}")
    };
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("\"{value}\" must be an https:// URL or a host name/IP"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!("\"{value}\" is not a valid URL or host"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A CA certificate given as PEM or base64 of PEM, as PEM.
fn cluster_ca_pem(value: &str) -> Result<String, String> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    if value.contains(BEGIN) {
        return Ok(value.to_string());
    }
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(pem) if pem.contains(BEGIN) => Ok(pem),
            _ => Err("is base64 but not of a PEM certificate (-----BEGIN CERTIFICATE-----)".into()),
        },
        Err(_) => Err("is neither a PEM certificate nor base64 of one".into()),
    }
}

/// The value action.yml gives an input as its `default` (None: no default
/// there, the binary decides). `InputSpec::default` is a literal value
/// unless it is descriptive (has a space, `(`, `$` or `,`).
pub fn action_default(spec: &InputSpec) -> Option<&'static str> {
    if spec.name == "github-token" {
        return Some("${{ github.token }}");
    }
    let d = spec.default;
    let descriptive =
        d.is_empty() || d.contains(char::is_whitespace) || d.contains(['(', '$', ',']);
    (!descriptive).then_some(d)
}

/// Path, inline YAML, or base64 of YAML. Never an input error: whatever is
/// wrong with a kubeconfig (a missing file, a directory, bad YAML, bad
/// base64 content) is found when it is read, as exit 78 naming the source
/// without quoting it. The rule: 2 is for values rollguard can judge by
/// themselves; 78 is for everything about the cluster's credentials.
fn classify_kubeconfig(value: &str) -> Result<KubeconfigSource, String> {
    use base64::Engine as _;
    let looks_yaml = |s: &str| {
        s.contains("clusters:") || s.contains("apiVersion:") || s.contains("current-context:")
    };
    if looks_yaml(value) {
        return Ok(KubeconfigSource::Inline(value.to_string()));
    }
    let single_line = !value.contains('\n');
    if single_line && std::path::Path::new(value).exists() {
        return Ok(KubeconfigSource::Path(value.to_string()));
    }
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(compact.as_bytes())
        && let Ok(text) = String::from_utf8(bytes)
    {
        // Base64 of text: meant as an inline kubeconfig (its YAML is
        // checked when it is read).
        return Ok(KubeconfigSource::Inline(text));
    }
    let path_like = single_line
        && value.len() <= 1024
        && !value.contains(char::is_whitespace)
        && (value.contains('/') || value.starts_with('.') || value.starts_with('~'));
    if path_like {
        // A path that does not exist: said so (naming it) when read.
        return Ok(KubeconfigSource::Path(value.to_string()));
    }
    // Anything else is taken as inline YAML: its parse error says where and
    // what, never the text.
    Ok(KubeconfigSource::Inline(value.to_string()))
}

/// The CI job URL, else the host name: who made this change.
fn run_origin(env: &Env) -> String {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
    if let (Some(server), Some(repo), Some(run)) = (
        get("GITHUB_SERVER_URL"),
        get("GITHUB_REPOSITORY"),
        get("GITHUB_RUN_ID"),
    ) {
        return format!("{server}/{repo}/actions/runs/{run}");
    }
    if let Some(url) = get("CI_JOB_URL") {
        return url.clone();
    }
    if let Some(build) = get("BUILD_ID") {
        return format!("cloud build {build}");
    }
    get("HOSTNAME")
        .cloned()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

/// RFC 1123 label (namespaces, container names).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A valid label value: ≤ 63 chars, `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?` (empty allowed by
/// Kubernetes, but not useful as a version: rejected here).
pub fn is_label_value(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
        && s.bytes().all(|b| alnum(b) || b"-_.".contains(&b))
}

/// A qualified label key: `[prefix/]name`, prefix a DNS subdomain ≤ 253, name ≤ 63.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label);
        if !ok {
            return Err("is not a valid label key: the prefix must be a DNS subdomain (e.g. app.kubernetes.io/version)".into());
        }
    }
    if !is_label_value(name) {
        return Err("is not a valid label key: the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into());
    }
    Ok(())
}

/// Make a label value from a tag: invalid characters become '-', trimmed to
/// 63 and to alphanumeric ends. A digest becomes its first 12 hex digits.
pub fn sanitise_label_value(tag: &str) -> Option<String> {
    let tag = match tag.strip_prefix("sha256:") {
        // chars, not bytes: never slices inside a UTF-8 character (issue #8 proptest).
        Some(hex) => format!("sha256-{}", hex.chars().take(12).collect::<String>()),
        None => tag.to_string(),
    };
    let mapped: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cut: String = mapped.chars().take(63).collect();
    let trimmed = cut.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// `--help` text: every input with its default and an example.
pub fn help_text() -> String {
    let mut s = String::from(
        "rollguard: set a new image on a Kubernetes workload, follow the rollout, fail fast on the real cause,\nroll back automatically and say why.\n\nInputs come from the environment: INPUT_<NAME> (GitHub Actions, hyphens kept, e.g. INPUT_DRY-RUN)\nor ROLLGUARD_<NAME> (upper-case, '_' for '-', e.g. ROLLGUARD_DRY_RUN). Empty means unset.\n\nINPUTS\n",
    );
    for i in INPUTS {
        let default = if i.default.is_empty() {
            "(none)"
        } else {
            i.default
        };
        s.push_str(&format!(
            "  {:<20} {}{}\n  {:<20} default: {}   example: {}\n",
            i.name,
            i.help,
            if i.secret {
                " [secret: never logged]"
            } else {
                ""
            },
            "",
            default,
            i.example
        ));
    }
    s.push_str(
        "\nEXIT CODES\n  0   rolled out (and baked) successfully\n  1   rollout failed and was rolled back (healthy again), or failed with rollback=false\n  2   bad input or workload not fit to roll; nothing changed\n  3   rollout failed and the rollback failed, was not confirmed, or was refused\n  70  timed out (and rolled back)\n  78  kubeconfig, connection, authentication or permission problem\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn github_and_plain_spellings() {
        let s = from_env(&env(&[
            ("INPUT_WORKLOAD", "deploy/api"),
            ("INPUT_TAG", "v2"),
            ("INPUT_DRY-RUN", "true"),
            ("ROLLGUARD_UNSCHEDULABLE_GRACE", "1s"),
            ("INPUT_TIMEOUT", ""),
            ("INPUT_SLACK-WEBHOOK", "https://hooks.example/x"),
            ("INPUT_SOMETHING", "x"),
        ]))
        .unwrap();
        assert!(s.dry_run);
        assert_eq!(s.unschedulable_grace, Duration::from_secs(1));
        assert_eq!(s.timeout, Duration::from_secs(300));
        assert_eq!(s.change, ImageChange::Tag("v2".into()));
        assert_eq!(s.unknown, vec!["INPUT_SOMETHING".to_string()]);
        assert!(!format!("{s:?}").contains("hooks.example"));
    }

    #[test]
    fn errors_name_the_input() {
        let e = from_env(&env(&[
            ("INPUT_WORKLOAD", "api"),
            ("INPUT_TAG", "v2"),
            ("INPUT_TIMEOUT", "5x"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid input \"timeout\": \"5x\" is not a duration (e.g. 90s, 5m, 1h30m)"
        );
        let e = from_env(&env(&[
            ("INPUT_WORKLOAD", "api"),
            ("INPUT_TAG", "v2"),
            ("INPUT_IMAGE", "a:b"),
        ]))
        .unwrap_err();
        assert_eq!(e.input, "image");
        let e = from_env(&env(&[
            ("INPUT_WORKLOAD", "statefulset/db, pod/x"),
            ("INPUT_TAG", "v2"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("not a workload kind"), "{e}");
        let e = from_env(&env(&[
            ("INPUT_WORKLOAD", "rc/api-rc"),
            ("INPUT_TAG", "v2"),
            ("INPUT_MAX-SURGE", "0"),
        ]))
        .unwrap_err();
        assert_eq!(e.input, "max-surge");
        let s = from_env(&env(&[
            ("INPUT_WORKLOAD", "deploy/web,\nsts/db"),
            ("INPUT_TAG", "v2"),
            ("INPUT_MAX-UNAVAILABLE", "25%"),
        ]))
        .unwrap();
        assert_eq!(s.workloads.len(), 2);
        assert_eq!(s.max_unavailable.resolve(7, false), 1);
        assert_eq!(s.max_surge.resolve(7, true), 1);
    }

    #[test]
    fn sanitises_versions() {
        assert_eq!(sanitise_label_value("v2").as_deref(), Some("v2"));
        assert_eq!(
            sanitise_label_value("-feat/x+1-").as_deref(),
            Some("feat-x-1")
        );
        assert_eq!(sanitise_label_value(&"a".repeat(100)).unwrap().len(), 63);
        assert!(check_label_key("app.kubernetes.io/version").is_ok());
        assert!(check_label_key("Bad Key").is_err());
    }

    #[test]
    fn help_lists_every_input() {
        let h = help_text();
        for i in INPUTS {
            assert!(h.contains(i.name));
        }
    }
}
