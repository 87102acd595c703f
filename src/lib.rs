//! rollguard: a Kubernetes deploy step for CI. Sets a new image on a
//! workload, follows the rolling update, fails fast on the real cause, rolls
//! back automatically (verified) and says why.
//!
//! The pipeline: [`config`] (env → settings) → [`pipeline`] (for each
//! workload of any kind: permissions, deploy lock and recovery, plan and
//! pre-flight, the change, following it ([`track`]), [`diagnose`], rollback;
//! each kind's part in [`workload`]) → [`report`]. [`run`] is the entry
//! point shared by the binary and tests.

pub mod analysis;
pub mod canary;
pub mod config;
pub mod diagnose;
pub mod exit;
pub mod guards;
pub mod image;
pub mod k8s;
pub mod kube_client;
pub mod model;
pub mod pipeline;
pub mod preflight;
pub mod report;
pub mod stability;
pub mod superseded;
pub mod track;
pub mod workload;
// Reliability: retries, deploy lock, cancellation, interrupted-run recovery.
pub mod cancel;
pub mod lock;
pub mod recovery;
pub mod retry;
// The output boundary for untrusted text (cluster messages, input values).
pub mod text;

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
            // The whole source chain (names a TLS/certificate failure).
            format!(
                "{doing}: cannot reach the cluster: {}",
                retry::error_chain(other)
            ),
        ),
    }
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
    report.inputs = config::recorded_inputs(env);
    let settings = match config::from_env(env) {
        Ok(s) => s,
        Err(e) => {
            // One line (stdout and stderr share a CI log: not twice).
            let e = text::one_line(&e.to_string());
            let _ = writeln!(out, "rollguard: {e}");
            report.headline = format!("invalid input: {e}");
            // No secret input could be read: the outputs, summary and
            // annotation still say `invalid`; no comment or Slack post.
            let sinks = config::SinkSettings::default();
            let ci = config::CiContext::from_env(env);
            return finish(
                report,
                ExitCode::BadInput,
                Conclusion::Invalid,
                (&sinks, &ci, &report::publish::Posted::default()),
                out,
            )
            .await;
        }
    };
    let (sinks, ci) = (&settings.sinks, &settings.ci);
    // Masks first, before anything could echo a secret (GitHub only).
    let _ = write!(out, "{}", text::trusted(&report::publish::start(sinks, ci)));
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
    report.context = report::RunContext::new(ci, cluster.or(settings.context.clone()));
    let title = report::publish::group_title(&settings);
    // The GitHub deployment (environment input) is in progress from here on.
    let (deployment, warnings) =
        report::publish::deployment_begin(sinks, ci, &title, settings.dry_run).await;
    let posted = report::publish::Posted {
        github_deployment: deployment,
        ..Default::default()
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let _ = write!(
        out,
        "{}",
        text::trusted(&report::publish::warning_lines(ci, &warnings))
    );
    let _ = write!(
        out,
        "{}",
        text::trusted(&report::publish::group_start(ci, &title))
    );
    // One pipeline for every kind and for groups (all-or-nothing).
    let deployed = pipeline::deploy_group(&settings, &mut report, out).await;
    let _ = write!(out, "{}", text::trusted(&report::publish::group_end(ci)));
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
    finish(report, code, result, (sinks, ci, &posted), out).await
}

/// Publish the report to every sink (the JSON file when `report-file` is
/// set); no sink changes the outcome.
async fn finish(
    mut report: Report,
    code: ExitCode,
    result: Conclusion,
    (sinks, ci, posted): (
        &config::SinkSettings,
        &config::CiContext,
        &report::publish::Posted,
    ),
    out: &mut (dyn Write + Send),
) -> Outcome {
    lock::flush().await; // The deploy lock's release finishes before we exit.
    report.exit_code = code.code();
    report.result = result;
    report.finished_at = now_rfc3339();
    let mut console = report::console::Console { out };
    let mut json = sinks
        .report_file
        .clone()
        .map(|path| report::json::JsonFile { path });
    match &mut json {
        Some(j) => report::publish(&report, &mut [&mut console, j]),
        None => report::publish(&report, &mut [&mut console]),
    }
    let published = report::publish::publish_with(&report, sinks, ci, posted).await;
    // Our annotation and warnings, their data escaped by the GitHub sink.
    let _ = write!(out, "{}", text::trusted(&published.stdout));
    let _ = out.flush();
    for w in published.warnings {
        tracing::warn!("{w}");
    }
    Outcome {
        exit_code: code.code(),
        report,
    }
}
