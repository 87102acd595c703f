//! Inputs: the environment → typed, validated settings, read once.
//!
//! The binary hands the process environment over as an [`Env`]; everything
//! below config gets typed values ([`Settings`], [`CiContext`],
//! [`SinkSettings`], [`Reliability`]) and never the environment itself.
//! Everything here is pure: no cluster call.

mod canary;
mod ci;
mod cluster;
mod env;
mod inputs;
mod preflight;
mod reliability;
mod sinks;
mod values;

use std::time::Duration;

pub use crate::image::ImageChange;
pub use crate::k8s::names::{check_label_key, is_dns_label, is_label_value, sanitise_label_value};
pub use canary::Canary;
pub use ci::{Ci, CiContext, GITHUB_API, GitHub, GitLab};
pub use cluster::KubeconfigSource;
pub use env::{Env, env_from_os};
pub use inputs::{INPUTS, InputSpec, action_default, help_text, is_known_input, recorded_inputs};
pub use preflight::{CapacityCheck, Preflight};
pub use reliability::{OnCancel, Reliability};
pub use sinks::{SLACK_API, SLACK_API_VAR, SinkSettings, SlackOn, SlackRetry};
pub use values::IntOrPercent;

use crate::k8s::kind::WorkloadRef;
use values::{check_http_url, check_report_file, check_secret, parse_bool, parse_duration};

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
    /// The sinks' settings: secrets, Slack, the GitHub environment, the report file.
    pub sinks: SinkSettings,
    /// The CI this run is in.
    pub ci: CiContext,
    /// Unknown `INPUT_*` / `ROLLGUARD_*` names (warned about, not fatal).
    pub unknown: Vec<String>,
    /// Where this run comes from (CI job URL or host), for change-cause.
    pub run_origin: String,
    /// The pre-flight registry and capacity checks.
    pub preflight: Preflight,
    /// `lock`, `lock-timeout`, `on-cancel` and the run identity.
    pub reliability: Reliability,
    /// The metric gate, when `prometheus-url` and `analysis-query` are given.
    pub analysis: Option<crate::analysis::settings::Settings>,
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

/// Read and validate every input. No cluster call happens here.
pub fn from_env(env: &Env) -> Result<Settings, InputError> {
    let (raw, unknown) = env::read_inputs(env)?;
    settle(raw, env, unknown)
}

fn settle(raw: inputs::RawInputs, env: &Env, unknown: Vec<String>) -> Result<Settings, InputError> {
    let workloads = match raw.workload.as_deref() {
        None => return Err(bad("workload", "is required (e.g. deployment/api)")),
        Some(w) => crate::k8s::kind::parse_list(w).map_err(|p| bad("workload", p))?,
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
    let preflight = preflight::preflight_settings(&raw, env)?;
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
    let canary = canary::settings(
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
    let kubeconfig = cluster::cluster_source(
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
    let analysis = crate::analysis::settings::from_inputs(&crate::analysis::settings::Inputs {
        url: raw.prometheus_url.as_deref(),
        token: raw.prometheus_token.as_deref(),
        username: raw.prometheus_username.as_deref(),
        password: raw.prometheus_password.as_deref(),
        query: raw.analysis_query.as_deref(),
        condition: raw.analysis_condition.as_deref(),
        interval: raw.analysis_interval.as_deref(),
        failure_limit: raw.analysis_failure_limit.as_deref(),
        has_hold: !bake.is_zero() || canary.is_some(),
    })
    .map_err(|e| bad(e.input, e.problem))?;
    let ci = CiContext::from_env(env);
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
        sinks: SinkSettings {
            github_token: raw.github_token,
            gitlab_token: raw.gitlab_token,
            slack_webhook: raw.slack_webhook,
            slack_token: raw.slack_token,
            slack_channel: raw.slack_channel,
            slack_on,
            slack_api: sinks::slack_api(env),
            environment,
            environment_url,
            report_file: raw.report_file,
            // The metric gate's credentials: masked and scrubbed like the rest.
            extra_secrets: [&raw.prometheus_token, &raw.prometheus_password]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            ..SinkSettings::default()
        },
        unknown,
        run_origin: ci.run_origin(),
        preflight,
        reliability: reliability::reliability(
            raw.lock.as_deref(),
            raw.lock_timeout.as_deref(),
            raw.on_cancel.as_deref(),
            ci.lock_identity(),
        )?,
        ci,
        analysis,
    })
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
    fn ci_sinks_and_lock_are_read_once() {
        let s = from_env(&env(&[
            ("INPUT_WORKLOAD", "deploy/api"),
            ("INPUT_TAG", "v2"),
            ("INPUT_LOCK-TIMEOUT", "2m"),
            ("ROLLGUARD_ON_CANCEL", "leave"),
            ("INPUT_REPORT-FILE", "report.json"),
            ("INPUT_SLACK-TOKEN", "xoxb-1"),
            ("SLACK_API_URL", "http://127.0.0.1:9/api"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_RUN_ID", "7"),
            ("GITHUB_OUTPUT", "/tmp/out"),
        ]))
        .unwrap();
        assert_eq!(s.ci.which(), Ci::GitHubActions);
        assert_eq!(s.ci.github.output_file.as_deref(), Some("/tmp/out"));
        assert_eq!(s.run_origin, "https://github.com/o/r/actions/runs/7");
        assert_eq!(s.reliability.identity, s.run_origin);
        assert_eq!(s.reliability.lock_timeout, Duration::from_secs(120));
        assert_eq!(s.reliability.on_cancel, OnCancel::Leave);
        assert!(s.reliability.lock);
        assert_eq!(s.sinks.report_file.as_deref(), Some("report.json"));
        assert_eq!(s.sinks.slack_api, "http://127.0.0.1:9/api");
        assert_eq!(s.sinks.secrets(), vec!["xoxb-1"]);
        assert!(!format!("{s:?}").contains("xoxb-1"));
        // Both spellings of a lock input with different values: named, not guessed.
        let e = from_env(&env(&[
            ("INPUT_WORKLOAD", "api"),
            ("INPUT_TAG", "v2"),
            ("INPUT_LOCK", "false"),
            ("ROLLGUARD_LOCK", "true"),
        ]))
        .unwrap_err();
        assert_eq!(e.input, "lock");
        let e = from_env(&env(&[
            ("INPUT_WORKLOAD", "api"),
            ("INPUT_TAG", "v2"),
            ("ROLLGUARD_LOCK_TIMEOUT", "soon"),
        ]))
        .unwrap_err();
        assert_eq!(e.input, "lock-timeout");
    }

    #[test]
    fn help_lists_every_input() {
        let h = help_text();
        for i in INPUTS {
            assert!(h.contains(i.name));
        }
    }
}
