//! rollguard: a Kubernetes deploy step for CI. Sets a new image on a
//! workload, follows the rolling update, fails fast on the real cause, rolls
//! back automatically (verified) and says why.
//!
//! The pipeline: [`config`] (env → settings) → [`orchestrate`] (for each
//! workload of any kind: permissions, deploy lock and recovery, plan
//! ([`workload`]), pre-flight, the patch, [`track`] (watch, judge),
//! [`diagnose`], rollback) → [`report`]. [`run`] is the entry point shared
//! by the binary and tests.

pub mod canary;
pub mod config;
pub mod diagnose;
pub mod exit;
pub mod guards;
pub mod image;
pub mod kube_client;
pub mod orchestrate;
pub mod preflight;
pub mod report;
pub mod stability;
pub mod superseded;
pub mod track;
pub mod workload;
// Issue #8 (reliability): retries, deploy lock, cancellation, interrupted-run recovery.
pub mod cancel;
pub mod lock;
pub mod recovery;
pub mod retry;
// The output boundary for untrusted text (cluster messages, input values).
pub mod text;

use std::collections::BTreeMap;
use std::io::Write;

pub use config::Env;
pub use exit::ExitCode;
use report::{Conclusion, Report};

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit_code: i32,
    pub report: Report,
}

/// The environment of this process as an [`Env`] (non-UTF-8 values dropped).
pub fn process_env() -> Env {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// A failure that ends the run before anything changed (or at the patch).
pub(crate) struct Stop {
    pub(crate) code: ExitCode,
    pub(crate) message: String,
    /// A pre-flight check refused the change (result `blocked`).
    pub(crate) preflight: bool,
}

pub(crate) fn stop(code: ExitCode, message: impl Into<String>) -> Stop {
    Stop {
        code,
        message: message.into(),
        preflight: false,
    }
}

/// A client error in one line: the API's message and code (never kube's
/// Debug dump of the Status), else the source chain.
pub(crate) fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => text::one_line(&format!("{} ({})", s.message, s.code)),
        other => text::one_line(&retry::error_chain(other)),
    }
}

/// Map a Kubernetes client error while doing `doing` to an exit code.
pub(crate) fn cluster_error(e: &kube::Error, doing: &str) -> Stop {
    match e {
        kube::Error::Api(s) if s.code == 401 => stop(
            ExitCode::ClusterConfig,
            format!(
                "{doing}: the cluster rejected our credentials (401 Unauthorized): check the kubeconfig's user/token"
            ),
        ),
        kube::Error::Api(s) if s.code == 403 => stop(
            ExitCode::ClusterConfig,
            format!("{doing}: permission denied: {}", s.message),
        ),
        kube::Error::Api(s) => stop(
            ExitCode::ClusterConfig,
            format!("{doing}: {} ({})", s.message, s.code),
        ),
        other => stop(
            ExitCode::ClusterConfig,
            // Issue #8: the whole source chain (names a TLS/certificate failure).
            format!(
                "{doing}: cannot reach the cluster: {}",
                retry::error_chain(other)
            ),
        ),
    }
}

/// Inputs worth recording (never secrets).
fn recorded_inputs(env: &Env) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in env {
        let name = k
            .strip_prefix("INPUT_")
            .or_else(|| k.strip_prefix("ROLLGUARD_"))
            .map(|n| n.to_ascii_lowercase().replace('_', "-"));
        if let Some(name) = name
            && let Some(spec) = config::INPUTS.iter().find(|i| i.name == name)
            && !spec.secret
            && !v.is_empty()
        {
            // A kubeconfig given inline (YAML or base64) holds credentials: record only paths.
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

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Run rollguard with this environment; the human summary and progress
/// lines go to `out`, logs to tracing. Never panics on cluster data.
pub async fn run(env: &Env, out: &mut (dyn Write + Send)) -> Outcome {
    kube_client::install_crypto_provider();
    // Every line written below passes the boundary: no terminal escapes,
    // and no workflow command but the ones marked as our own.
    let mut safe = text::SafeWriter::new(out);
    let out: &mut (dyn Write + Send) = &mut safe;
    let mut report = Report::new(now_rfc3339());
    report.inputs = recorded_inputs(env);
    let settings = match config::from_env(env) {
        Ok(s) => s,
        Err(e) => {
            // One line (stdout and stderr share a CI log: not twice).
            let e = text::one_line(&e.to_string());
            let _ = writeln!(out, "rollguard: {e}");
            report.headline = format!("invalid input: {e}");
            // No secret input could be read: the outputs, summary and
            // annotation still say `invalid`; no comment or Slack post.
            let sinks = report::publish::SinkConfig::default();
            return finish(
                report,
                ExitCode::BadInput,
                Conclusion::Invalid,
                None,
                Some(&sinks),
                env,
                out,
            )
            .await;
        }
    };
    let mut sinks = report::publish::SinkConfig::from_settings(&settings);
    // Masks first, before anything could echo a secret (GitHub only).
    let _ = write!(
        out,
        "{}",
        text::trusted(&report::publish::start(&sinks, env))
    );
    for u in &settings.unknown {
        tracing::warn!("ignoring unknown input {u}");
    }
    report.workload = settings
        .workloads
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    report.version_label = Some(settings.version_label.clone());
    // The kubeconfig context the run uses (read again here: a cheap parse).
    let cluster = match kube_client::load(&settings.kubeconfig).await {
        Ok((kc, what)) => kube_client::select_context(&kc, settings.context.as_deref(), &what)
            .ok()
            .flatten()
            .or_else(|| kc.current_context.clone().filter(|c| !c.is_empty())),
        Err(_) => None,
    };
    report.context = report::RunContext::from_env(env, cluster.or(settings.context.clone()));
    let report_file = settings.report_file.clone();
    let title = report::publish::group_title(&settings);
    // The GitHub deployment (environment input) is in progress from here on.
    let (deployment, warnings) =
        report::publish::deployment_begin(&sinks, env, &title, settings.dry_run).await;
    sinks.github_deployment = deployment;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let _ = write!(
        out,
        "{}",
        text::trusted(&report::publish::warning_lines(env, &warnings))
    );
    let _ = write!(
        out,
        "{}",
        text::trusted(&report::publish::group_start(env, &title))
    );
    // One pipeline for every kind and for groups (all-or-nothing).
    let deployed = orchestrate::deploy_group(&settings, &mut report, out).await;
    let _ = write!(out, "{}", text::trusted(&report::publish::group_end(env)));
    let code = match deployed {
        Ok(code) => code,
        Err(s) => {
            // The one-line error; the console summary below does not repeat it.
            let message = text::one_line(&s.message);
            let _ = writeln!(out, "rollguard: {message}");
            report.result = if s.preflight {
                Conclusion::Blocked
            } else {
                Conclusion::Invalid
            };
            if s.preflight && report.cause.is_none() {
                report.cause = Some(message.clone());
            }
            report.headline = message;
            s.code
        }
    };
    let result = report.result;
    finish(report, code, result, report_file, Some(&sinks), env, out).await
}

/// Publish the report to every sink; no sink changes the outcome.
async fn finish(
    mut report: Report,
    code: ExitCode,
    result: Conclusion,
    report_file: Option<String>,
    sinks: Option<&report::publish::SinkConfig>,
    env: &Env,
    out: &mut (dyn Write + Send),
) -> Outcome {
    lock::flush().await; // Issue #8: the deploy lock's release finishes before we exit.
    report.exit_code = code.code();
    report.result = result;
    report.finished_at = now_rfc3339();
    let mut console = report::console::Console { out };
    let mut json = report_file.map(|path| report::json::JsonFile { path });
    match &mut json {
        Some(j) => report::publish(&report, &mut [&mut console, j]),
        None => report::publish(&report, &mut [&mut console]),
    }
    if let Some(sinks) = sinks {
        let published = report::publish::publish_with(&report, sinks, env, None).await;
        // Our annotation and warnings, their data escaped by the GitHub sink.
        let _ = write!(out, "{}", text::trusted(&published.stdout));
        let _ = out.flush();
        for w in published.warnings {
            tracing::warn!("{w}");
        }
    }
    Outcome {
        exit_code: code.code(),
        report,
    }
}
