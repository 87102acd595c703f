//! Every input rollguard knows (name, default, example, help), the raw
//! string form they are read into, and the `--help` text.

use serde::Deserialize;

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
    // The metric gate: a PromQL query judged during the bake.
    input(
        "prometheus-url",
        "",
        "http://prometheus.monitoring:9090",
        "metric gate: the Prometheus HTTP API (also Thanos, Mimir, VictoriaMetrics) to evaluate analysis-query against",
    ),
    secret(
        "prometheus-token",
        "$PROMETHEUS_TOKEN",
        "metric gate: bearer token for prometheus-url (secret)",
    ),
    input(
        "prometheus-username",
        "",
        "rollguard",
        "metric gate: basic-auth user for prometheus-url (with prometheus-password)",
    ),
    secret(
        "prometheus-password",
        "$PROMETHEUS_PASSWORD",
        "metric gate: basic-auth password for prometheus-url (secret)",
    ),
    input(
        "analysis-query",
        "",
        "sum(rate(http_requests_total{{{ version_label }}=\"{{ version }}\",code=~\"5..\"}[1m])) / sum(rate(http_requests_total{{{ version_label }}=\"{{ version }}\"}[1m]))",
        "metric gate: PromQL giving one number, with {{ version }}, {{ version_label }}, {{ namespace }}, {{ workload }}, {{ container }}; evaluated every analysis-interval during bake",
    ),
    input(
        "analysis-condition",
        "",
        "< 0.01",
        "metric gate: what a passing value satisfies: <, <=, >, >=, == or != and a number",
    ),
    input(
        "analysis-interval",
        "30s (with a gate)",
        "1m",
        "metric gate: time between evaluations (and a last one when the bake ends)",
    ),
    input(
        "analysis-failure-limit",
        "1 (with a gate)",
        "3",
        "metric gate: failing evaluations in a row that fail the rollout (no data neither counts nor resets)",
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
#[serde(rename_all = "kebab-case")]
pub(super) struct RawInputs {
    pub(super) workload: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) container: Option<String>,
    pub(super) image: Option<String>,
    pub(super) tag: Option<String>,
    pub(super) version: Option<String>,
    pub(super) version_label: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) rollback: Option<String>,
    pub(super) rollback_timeout: Option<String>,
    pub(super) restart_threshold: Option<String>,
    pub(super) unschedulable_grace: Option<String>,
    pub(super) bake: Option<String>,
    pub(super) stable_for: Option<String>,
    pub(super) canary: Option<String>,
    pub(super) canary_hold: Option<String>,
    pub(super) scale_up_grace: Option<String>,
    pub(super) kubeconfig: Option<String>,
    pub(super) context: Option<String>,
    pub(super) auth: Option<String>,
    pub(super) cluster_endpoint: Option<String>,
    pub(super) cluster_ca: Option<String>,
    pub(super) dry_run: Option<String>,
    pub(super) report_file: Option<String>,
    pub(super) verify_image: Option<String>,
    pub(super) registry_auth: Option<String>,
    pub(super) insecure_registries: Option<String>,
    pub(super) pin_digest: Option<String>,
    pub(super) capacity_check: Option<String>,
    pub(super) github_token: Option<String>,
    pub(super) gitlab_token: Option<String>,
    pub(super) slack_webhook: Option<String>,
    pub(super) slack_token: Option<String>,
    pub(super) slack_channel: Option<String>,
    pub(super) slack_on: Option<String>,
    pub(super) environment: Option<String>,
    pub(super) environment_url: Option<String>,
    pub(super) max_surge: Option<String>,
    pub(super) max_unavailable: Option<String>,
    pub(super) prometheus_url: Option<String>,
    pub(super) prometheus_token: Option<String>,
    pub(super) prometheus_username: Option<String>,
    pub(super) prometheus_password: Option<String>,
    pub(super) analysis_query: Option<String>,
    pub(super) analysis_condition: Option<String>,
    pub(super) analysis_interval: Option<String>,
    pub(super) analysis_failure_limit: Option<String>,
    pub(super) lock: Option<String>,
    pub(super) lock_timeout: Option<String>,
    pub(super) on_cancel: Option<String>,
}

/// Is `name` one of the inputs (an `INPUT_*`/`ROLLGUARD_*` that is not is warned about)?
pub fn is_known_input(name: &str) -> bool {
    INPUTS.iter().any(|i| i.name == name)
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

/// The inputs worth recording in the report, as given (never a secret; an
/// inline kubeconfig, which holds credentials, as `(inline)`).
pub fn recorded_inputs(env: &super::Env) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in env {
        let name = k
            .strip_prefix("INPUT_")
            .or_else(|| k.strip_prefix("ROLLGUARD_"))
            .map(|n| n.to_ascii_lowercase().replace('_', "-"));
        if let Some(name) = name
            && let Some(spec) = INPUTS.iter().find(|i| i.name == name)
            && !spec.secret
            && !v.is_empty()
        {
            // Only a path is recorded as given.
            let value = if name == "kubeconfig" && !std::path::Path::new(v).is_file() {
                "(inline)".to_string()
            } else {
                v.clone()
            };
            out.insert(name, value);
        }
    }
    out
}
