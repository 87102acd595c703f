//! Cancellation: a CI cancel sends SIGTERM (GitHub, GitLab) or SIGINT (a
//! terminal).
//!
//! - the first signal cancels the [`CancelToken`] the pipeline selects on:
//!   it stops tracking, rolls back to the captured template (input
//!   `on-cancel` = `rollback`, the default) or leaves the change
//!   (`on-cancel=leave`), reports, and exits 1 when the rollback is confirmed
//!   (3 when not) — all within [`GRACE`] of the signal;
//! - a second signal exits at once (code 3), after leaving the annotation
//!   [`STATE`] on every workload [`register`]ed at that moment (each one a
//!   group is rolling) saying what state it was left in (best effort, all
//!   at once, bounded by one second).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The annotation a run interrupted by a second signal leaves on the workload.
pub const STATE: &str = "rollguard.dev/state";

/// From the first signal to the exit.
pub const GRACE: Duration = Duration::from_secs(10);
/// The part of [`GRACE`] the cancel-rollback may spend waiting for health.
pub const ROLLBACK_BUDGET: Duration = Duration::from_secs(7);

pub use crate::config::OnCancel;

/// Cancelled by the first SIGTERM/SIGINT; cheap to clone.
#[derive(Clone, Debug)]
pub struct CancelToken {
    rx: watch::Receiver<Option<&'static str>>,
}

/// The sending side (tests and the signal task).
#[derive(Clone, Debug)]
pub struct Canceller {
    tx: std::sync::Arc<watch::Sender<Option<&'static str>>>,
}

impl Canceller {
    /// Cancel with `why` (e.g. "SIGTERM"); later calls keep the first reason.
    pub fn cancel(&self, why: &'static str) {
        self.tx.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(why);
                true
            } else {
                false
            }
        });
    }
}

/// A token and its canceller.
pub fn token() -> (Canceller, CancelToken) {
    let (tx, rx) = watch::channel(None);
    (
        Canceller {
            tx: std::sync::Arc::new(tx),
        },
        CancelToken { rx },
    )
}

impl CancelToken {
    /// A token that is never cancelled (library runs without signals).
    pub fn never() -> CancelToken {
        let (c, t) = token();
        std::mem::forget(c);
        t
    }

    /// The signal that cancelled, if any.
    pub fn reason(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }

    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }

    /// Resolves with the reason at the first cancellation (never if none).
    pub async fn cancelled(&self) -> &'static str {
        let mut rx = self.rx.clone();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// A workload the run is changing, for the second signal's annotation.
#[derive(Clone)]
struct Target {
    id: u64,
    client: kube::Client,
    /// `/apis/apps/v1/namespaces/NS/deployments/NAME`
    path: String,
    /// What the run is doing to it ("rolling out web:v2 (previously web:v1)").
    phase: String,
}

/// Every registered target, in registration order.
static TARGETS: Mutex<Vec<Target>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A registered target: unregistered when dropped.
#[derive(Debug)]
pub struct Handle {
    id: u64,
}

/// Tell the second-signal handler that the run is changing the object at
/// `object_path` (doing `phase`); it stays a target until the [`Handle`]
/// is dropped.
pub fn register(client: &kube::Client, object_path: String, phase: impl Into<String>) -> Handle {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut t) = TARGETS.lock() {
        t.push(Target {
            id,
            client: client.clone(),
            path: object_path,
            phase: phase.into(),
        });
    }
    Handle { id }
}

impl Handle {
    /// Record what the run is doing to this target now (one line).
    pub fn set_phase(&self, phase: impl Into<String>) {
        if let Ok(mut t) = TARGETS.lock()
            && let Some(target) = t.iter_mut().find(|t| t.id == self.id)
        {
            target.phase = phase.into();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Ok(mut t) = TARGETS.lock() {
            t.retain(|t| t.id != self.id);
        }
    }
}

/// A canary Deployment the second signal deletes before exiting.
static CANARY: Mutex<Option<(kube::Client, String)>> = Mutex::new(None);

/// Tell the second-signal handler which canary Deployment to delete.
pub fn set_canary(client: &kube::Client, object_path: String) {
    if let Ok(mut t) = CANARY.lock() {
        *t = Some((client.clone(), object_path));
    }
}

/// The canary is gone: nothing to delete on a second signal.
pub fn clear_canary() {
    if let Ok(mut t) = CANARY.lock() {
        *t = None;
    }
}

/// One delete call for the canary (bounded by 1 s): its pods leave the
/// Service before the process exits.
async fn delete_canary() {
    let target = CANARY.lock().ok().and_then(|t| t.clone());
    let Some((client, path)) = target else { return };
    let req = http::Request::builder()
        .method(http::Method::DELETE)
        .uri(format!("{path}?propagationPolicy=Background"))
        .body(Vec::new());
    let Ok(req) = req else { return };
    let sent = tokio::time::timeout(
        Duration::from_secs(1),
        client.request::<serde_json::Value>(req),
    )
    .await;
    match sent {
        Ok(Ok(_)) => eprintln!("rollguard: deleted the canary"),
        Ok(Err(e)) => eprintln!("rollguard: could not delete the canary: {e}"),
        Err(_) => eprintln!("rollguard: could not delete the canary in time"),
    }
}

/// The paths of the registered targets (what a second signal would annotate).
#[cfg(test)]
fn targets() -> Vec<String> {
    TARGETS
        .lock()
        .map(|t| t.iter().map(|t| t.path.clone()).collect())
        .unwrap_or_default()
}

/// The value of [`STATE`] for a run that exits now.
pub fn state_value(phase: &str, at: &str) -> String {
    let what = if phase.is_empty() {
        "no change made yet"
    } else {
        phase
    };
    format!(
        "interrupted at {at} by a second signal while {what}; the workload was left as it was: check it, or run rollguard again (it rolls back an interrupted change first)"
    )
}

/// Merge-patch the [`STATE`] annotation onto every target, all at once
/// (bounded by 2 s in all: a busy API server or a fresh TLS connection
/// can take more than a second, and the annotation is what tells the next
/// person the state the workload was left in).
async fn annotate_state() {
    let targets = TARGETS.lock().map(|t| t.clone()).unwrap_or_default();
    let at = jiff::Timestamp::now().to_string();
    let patches = targets.iter().map(|t| annotate(t, &at));
    futures::future::join_all(patches).await;
}

async fn annotate(t: &Target, at: &str) {
    let value = state_value(&t.phase, at);
    let body = serde_json::json!({"metadata": {"annotations": {STATE: value}}});
    let req = http::Request::builder()
        .method(http::Method::PATCH)
        .uri(format!("{}?fieldManager=rollguard", t.path))
        .header(http::header::CONTENT_TYPE, "application/merge-patch+json")
        .body(body.to_string().into_bytes());
    let Ok(req) = req else { return };
    let sent = tokio::time::timeout(
        Duration::from_secs(2),
        t.client.request::<serde_json::Value>(req),
    )
    .await;
    match sent {
        Ok(Ok(_)) => eprintln!("rollguard: left {STATE} on the workload"),
        Ok(Err(e)) => eprintln!("rollguard: could not annotate the workload: {e}"),
        Err(_) => eprintln!("rollguard: could not annotate the workload in time"),
    }
}

/// Listen for SIGTERM and SIGINT: the first cancels the token, the second
/// annotates the workload and exits the process at once (code 3).
/// Must be called inside a tokio runtime.
pub fn install() -> CancelToken {
    let (canceller, token) = token();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::spawn(async move {
                    let mut seen = 0u32;
                    loop {
                        let name = tokio::select! {
                            _ = term.recv() => "SIGTERM",
                            _ = int.recv() => "SIGINT",
                        };
                        seen += 1;
                        if seen == 1 {
                            eprintln!(
                                "rollguard: {name}: cancelling (on-cancel decides: roll back or leave); a second signal exits at once"
                            );
                            canceller.cancel(name);
                        } else {
                            eprintln!("rollguard: second signal ({name}): exiting now");
                            delete_canary().await;
                            annotate_state().await;
                            std::process::exit(crate::ExitCode::RollbackFailed.code());
                        }
                    }
                });
            }
            _ => tracing::warn!("cannot listen for SIGTERM/SIGINT: cancellation is not handled"),
        }
    }
    #[cfg(not(unix))]
    {
        let c = canceller;
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                c.cancel("SIGINT");
            }
        });
    }
    token
}

/// The process-wide token: [`install`]ed by the binary, else never cancelled.
static GLOBAL: Mutex<Option<CancelToken>> = Mutex::new(None);

/// Install the signal handlers once and make the token the one [`current`] returns.
pub fn install_global() -> CancelToken {
    let t = install();
    if let Ok(mut g) = GLOBAL.lock() {
        *g = Some(t.clone());
    }
    t
}

/// The token the pipeline selects on.
pub fn current() -> CancelToken {
    GLOBAL
        .lock()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_else(CancelToken::never)
}

/// The line printed when the pipeline notices the cancellation.
pub fn announce(why: &str, on_cancel: OnCancel, old_image: &str) -> String {
    match on_cancel {
        OnCancel::Rollback => format!(
            "cancelled ({why}): stopped tracking; rolling back to {old_image} (on-cancel=rollback)"
        ),
        OnCancel::Leave => {
            format!(
                "cancelled ({why}): stopped tracking; leaving the change in place (on-cancel=leave)"
            )
        }
    }
}

/// Fill the report of a cancelled run and choose its exit code: 1 when the
/// rollback was confirmed (or on-cancel=leave), 3 when it was not.
pub fn conclude(
    why: &str,
    workload: &str,
    new_image: &str,
    old_image: &str,
    rollback: Option<(bool, String)>,
    report: &mut crate::report::Report,
) -> crate::ExitCode {
    use crate::report::{Conclusion, Rollback};
    report.cause = Some(format!("cancelled by {why}"));
    match rollback {
        None => {
            report.rollback = Some(Rollback {
                attempted: false,
                confirmed: false,
                detail: "on-cancel=leave: the change was left in place".into(),
            });
            report.headline = format!(
                "{workload}: cancelled ({why}) during the rollout of {new_image}; left in place (on-cancel=leave)"
            );
            report.result = Conclusion::Failed;
            crate::ExitCode::RolledBack
        }
        Some((confirmed, detail)) => {
            report.rollback = Some(Rollback {
                attempted: true,
                confirmed,
                detail,
            });
            if confirmed {
                report.headline = format!(
                    "{workload}: cancelled ({why}) during the rollout of {new_image}; rolled back to {old_image}"
                );
                report.result = Conclusion::RolledBack;
                crate::ExitCode::RolledBack
            } else {
                report.headline = format!(
                    "{workload}: cancelled ({why}) during the rollout of {new_image}; the rollback to {old_image} was not confirmed"
                );
                report.result = Conclusion::Failed;
                crate::ExitCode::RollbackFailed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins() {
        let (c, t) = token();
        assert!(!t.is_cancelled());
        let waiter = tokio::spawn({
            let t = t.clone();
            async move { t.cancelled().await }
        });
        c.cancel("SIGTERM");
        c.cancel("SIGINT");
        assert_eq!(waiter.await.unwrap(), "SIGTERM");
        assert_eq!(t.reason(), Some("SIGTERM"));
        assert!(state_value("", "now").contains("no change"));
    }

    #[tokio::test]
    async fn targets_are_registered_until_dropped() {
        let config = kube::Config::new("https://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let web = register(
            &client,
            "/apis/apps/v1/namespaces/t/deployments/web".into(),
            "a",
        );
        let api = register(
            &client,
            "/apis/apps/v1/namespaces/t/deployments/api".into(),
            "b",
        );
        let ours = |paths: Vec<String>| -> Vec<String> {
            paths
                .into_iter()
                .filter(|p| p.contains("/namespaces/t/"))
                .collect()
        };
        assert_eq!(
            ours(targets()),
            vec![
                "/apis/apps/v1/namespaces/t/deployments/web".to_string(),
                "/apis/apps/v1/namespaces/t/deployments/api".to_string()
            ]
        );
        api.set_phase("rolling back");
        let phases: Vec<String> = TARGETS
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.path.contains("/namespaces/t/"))
            .map(|t| t.phase.clone())
            .collect();
        assert_eq!(phases, vec!["a".to_string(), "rolling back".to_string()]);
        drop(web);
        assert_eq!(
            ours(targets()),
            vec!["/apis/apps/v1/namespaces/t/deployments/api".to_string()]
        );
        drop(api);
        assert!(ours(targets()).is_empty());
    }

    #[tokio::test]
    async fn never_stays_pending() {
        let t = CancelToken::never();
        let r = tokio::time::timeout(Duration::from_millis(20), t.cancelled()).await;
        assert!(r.is_err());
    }
}
