//! The deploy lock: one `coordination.k8s.io/v1` Lease per
//! workload, `rollguard-<kind>-<name>` in the workload's namespace, so two
//! pipelines never roll the same workload at once.
//!
//! - holder = the CI run's identity (from the settings: the GitHub run URL,
//!   the GitLab job URL, else host + pid); this process is told apart from another
//!   run with the same identity (matrix jobs) by a nonce annotation.
//! - acquire: create the Lease (no read first: usually there is none), or,
//!   when it exists, read it and take it over when it is free or expired
//!   (`renewTime + leaseDurationSeconds` passed), always with the
//!   resourceVersion we read (optimistic concurrency: two takers, one wins).
//! - otherwise log once that we wait for the holder, then watch the Lease
//!   (no polling) until it changes or expires, up to `lock-timeout`; then
//!   [`LockError::Timeout`] naming the holder (exit 3).
//! - renewed in a background task every `duration / 3` (a replace of the
//!   Lease as we last wrote it: one request; a conflict is read and checked);
//!   released at the end (deleted with the resourceVersion and uid we last
//!   wrote as preconditions, so never someone else's; a conflict is read and
//!   checked).
//! - no permission on Leases (403): warn and run without the lock.
//!
//! (Over 500 lines with its unit tests: acquire, renew and release of one
//! Lease.)

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions, WatchEvent, WatchParams};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Reliability;

/// The annotation with this process's nonce on a Lease it holds.
pub const NONCE: &str = "rollguard.dev/holder-nonce";
/// How long a Lease stays valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(30);

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the deploy lock lease/{lease} is held by {holder}: gave up after waiting {waited} (lock-timeout); run again when it finished"
    )]
    Timeout {
        lease: String,
        holder: String,
        waited: String,
    },
    #[error("the deploy lock lease/{lease}: {}", crate::api_message(error))]
    Api { lease: String, error: kube::Error },
    /// Creating the Lease answered 404: the namespace does not exist.
    #[error("namespace {ns} does not exist (check the namespace input)")]
    NoNamespace { ns: String },
}

/// The Lease verbs the deploy lock uses: read it, create it, take it
/// over / renew it, watch it while waiting, delete it when done.
pub const LEASE_VERBS: &[&str] = &["get", "create", "update", "watch", "delete"];

/// How often a wait for another run's lock is announced again.
pub const WAIT_HEARTBEAT: Duration = Duration::from_secs(30);

/// `rollguard-<kind>-<name>`, a valid object name (≤ 253, lower-case).
pub fn lease_name(kind: &str, name: &str) -> String {
    let raw = format!("rollguard-{kind}-{name}").to_ascii_lowercase();
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect();
    while s.ends_with(['-', '.']) {
        s.pop();
    }
    s
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// When a Lease expires (None: it has no holder or never renews).
fn expiry(lease: &Lease) -> Option<jiff::Timestamp> {
    let spec = lease.spec.as_ref()?;
    spec.holder_identity.as_ref().filter(|h| !h.is_empty())?;
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(0));
    renewed
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .ok()
}

/// The holder of a Lease when it is held and not expired.
pub fn live_holder(lease: &Lease) -> Option<String> {
    let exp = expiry(lease)?;
    (exp > jiff::Timestamp::now()).then(|| {
        lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
    })
}

fn nonce_of(lease: &Lease) -> Option<&str> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(NONCE)
        .map(String::as_str)
}

/// A held lock; call [`Held::release`] at the end.
pub struct Held {
    api: Api<Lease>,
    pub lease: String,
    pub identity: String,
    nonce: String,
    /// The Lease as we last wrote it (its resourceVersion and uid are the
    /// preconditions of the next renewal and of the release).
    written: std::sync::Arc<std::sync::Mutex<Lease>>,
    renewer: Option<JoinHandle<()>>,
}

/// The outcome of [`acquire`].
pub enum Acquired {
    Held(Box<Held>),
    /// No permission on Leases: the run goes on without the lock.
    Unlocked(String),
}

/// Take the deploy lock of `kind/name` in `ns`, waiting up to `timeout`
/// for another holder. `waiting` is called with the holder's identity and
/// how long we have waited: at once when we have to wait (and whenever the
/// holder changes), then every [`WAIT_HEARTBEAT`] while we still wait.
pub async fn acquire(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    identity: &str,
    timeout: Duration,
    mut waiting: impl FnMut(&str, Duration),
) -> Result<Acquired, LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    let lease = lease_name(kind, name);
    let nonce = format!("{:016x}", rand::random::<u64>());
    let started = Instant::now();
    let deadline = started + timeout;
    let err = |error| LockError::Api {
        lease: lease.clone(),
        error,
    };
    let mut announced: Option<(String, Instant)> = None;
    // The first attempt creates the Lease without reading it: there is
    // usually none. A conflict (it exists) reads it.
    let mut read_first = false;
    loop {
        let current = if !read_first {
            read_first = true;
            None
        } else {
            match api.get_opt(&lease).await {
                Ok(l) => l,
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    return Ok(Acquired::Unlocked(format!(
                        "no permission on leases in {ns} ({}): running without the deploy lock",
                        s.message
                    )));
                }
                Err(e) => return Err(err(e)),
            }
        };
        let mine = |resource_version: Option<String>, transitions: i32| Lease {
            metadata: ObjectMeta {
                name: Some(lease.clone()),
                namespace: Some(ns.to_string()),
                resource_version,
                annotations: Some([(NONCE.to_string(), nonce.clone())].into()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "rollguard".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.to_string()),
                lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
        };
        let attempt = match &current {
            None => api.create(&PostParams::default(), &mine(None, 0)).await,
            Some(l) if live_holder(l).is_none() || nonce_of(l) == Some(nonce.as_str()) => {
                let transitions = l
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0);
                if let Some(h) = l.spec.as_ref().and_then(|s| s.holder_identity.as_ref())
                    && !h.is_empty()
                {
                    tracing::warn!("taking over the expired deploy lock lease/{lease} of {h}");
                }
                api.replace(
                    &lease,
                    &PostParams::default(),
                    &mine(l.metadata.resource_version.clone(), transitions + 1),
                )
                .await
            }
            Some(l) => {
                let holder = live_holder(l).unwrap_or_default();
                let due = match &announced {
                    Some((h, at)) => *h != holder || at.elapsed() >= WAIT_HEARTBEAT,
                    None => true,
                };
                if due {
                    waiting(&holder, started.elapsed());
                    announced = Some((holder.clone(), Instant::now()));
                }
                if Instant::now() >= deadline {
                    return Err(LockError::Timeout {
                        lease,
                        holder,
                        waited: humantime::format_duration(Duration::from_secs(
                            started.elapsed().as_secs(),
                        ))
                        .to_string(),
                    });
                }
                let next_heartbeat = announced
                    .as_ref()
                    .map(|(_, at)| *at + WAIT_HEARTBEAT)
                    .unwrap_or(deadline);
                wait_for_change(&api, l, deadline.min(next_heartbeat)).await;
                continue;
            }
        };
        match attempt {
            Ok(written) => {
                let held = Held {
                    api: api.clone(),
                    lease: lease.clone(),
                    identity: identity.to_string(),
                    nonce: nonce.clone(),
                    written: std::sync::Arc::new(std::sync::Mutex::new(written)),
                    renewer: None,
                };
                return Ok(Acquired::Held(Box::new(held.start_renewing())));
            }
            // Someone else created or updated it first: look again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(kube::Error::Api(s)) if s.code == 404 && current.is_none() => {
                return Err(LockError::NoNamespace { ns: ns.to_string() });
            }
            Err(kube::Error::Api(s)) if s.code == 403 => {
                return Ok(Acquired::Unlocked(format!(
                    "no permission to write leases in {ns} ({}): running without the deploy lock",
                    s.message
                )));
            }
            Err(e) => return Err(err(e)),
        }
    }
}

/// Wait until the Lease changes (watch from its resourceVersion), it
/// expires, or `deadline`, whichever is first.
async fn wait_for_change(api: &Api<Lease>, lease: &Lease, deadline: Instant) {
    let name = lease.metadata.name.clone().unwrap_or_default();
    let rv = lease.metadata.resource_version.clone().unwrap_or_default();
    let until_expiry = expiry(lease)
        .and_then(|e| {
            let left = e.duration_since(jiff::Timestamp::now());
            Duration::try_from(left).ok()
        })
        .unwrap_or_default();
    // A little after the expiry, so the holder's clock skew is not our problem.
    let expires = Instant::now() + until_expiry + Duration::from_millis(250);
    let wake = expires.min(deadline);
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    let changed = async {
        match api.watch(&params, &rv).await {
            Ok(stream) => {
                let mut stream = stream.boxed();
                while let Ok(Some(ev)) = stream.try_next().await {
                    match ev {
                        WatchEvent::Bookmark(_) => continue,
                        _ => return,
                    }
                }
            }
            Err(e) => tracing::debug!("watching lease/{name}: {e}"),
        }
        // The watch ended or failed: look again after a short back-off.
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::select! {
        _ = changed => {}
        _ = tokio::time::sleep_until(wake) => {}
    }
}

impl Held {
    fn start_renewing(mut self) -> Held {
        let api = self.api.clone();
        let lease = self.lease.clone();
        let nonce = self.nonce.clone();
        let written = self.written.clone();
        self.renewer = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(LEASE_DURATION / 3);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = renew(&api, &lease, &nonce, &written).await {
                    tracing::warn!("renewing the deploy lock lease/{lease}: {e}");
                }
            }
        }));
        self
    }

    /// The Lease as we last wrote it.
    fn last_written(&self) -> Lease {
        self.written.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stop renewing and delete the Lease (only if it is still ours).
    pub async fn release(mut self) {
        if let Some(t) = self.renewer.take() {
            t.abort();
        }
        // Deleted as we last wrote it; a conflict (renewed by a request
        // whose answer we did not see, or taken over) is read and checked.
        match self
            .api
            .delete(&self.lease, &preconditions(&self.last_written()))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                tracing::warn!("releasing the deploy lock lease/{}: {e}", self.lease);
                return;
            }
        }
        let lease = match self.api.get_opt(&self.lease).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("releasing the deploy lock lease/{}: {e}", self.lease);
                return;
            }
        };
        if nonce_of(&lease) != Some(self.nonce.as_str()) {
            tracing::warn!(
                "the deploy lock lease/{} is no longer ours (held by {}); leaving it",
                self.lease,
                lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default()
            );
            return;
        }
        if let Err(e) = self.api.delete(&self.lease, &preconditions(&lease)).await {
            tracing::warn!("releasing the deploy lock lease/{}: {e}", self.lease);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(t) = self.renewer.take() {
            t.abort();
        }
    }
}

/// Delete only the Lease as `lease` describes it (its resourceVersion and uid).
fn preconditions(lease: &Lease) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: lease.metadata.resource_version.clone(),
            uid: lease.metadata.uid.clone(),
        }),
        ..Default::default()
    }
}

/// Renew the Lease as we last wrote it (one replace); when it changed since
/// (a conflict), read it and renew it only if it is still ours.
async fn renew(
    api: &Api<Lease>,
    name: &str,
    nonce: &str,
    written: &std::sync::Mutex<Lease>,
) -> Result<(), kube::Error> {
    let mut lease = written.lock().map(|l| l.clone()).unwrap_or_default();
    for attempt in 0..2 {
        if attempt > 0 {
            let Some(fresh) = api.get_opt(name).await? else {
                return Ok(());
            };
            if nonce_of(&fresh) != Some(nonce) {
                tracing::warn!("the deploy lock lease/{name} was taken over by another run");
                return Ok(());
            }
            lease = fresh;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(now());
        }
        match api.replace(name, &PostParams::default(), &lease).await {
            Ok(renewed) => {
                if let Ok(mut w) = written.lock() {
                    *w = renewed;
                }
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt == 0 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Releases started by dropped [`Guard`]s, awaited by [`flush`].
static RELEASES: std::sync::Mutex<Vec<JoinHandle<()>>> = std::sync::Mutex::new(Vec::new());

/// The deploy lock of one run: released when dropped (in the background;
/// [`flush`] waits for it before the process exits).
pub struct Guard {
    held: Option<Box<Held>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(h) = self.held.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let task = rt.spawn(h.release());
            if let Ok(mut r) = RELEASES.lock() {
                r.push(task);
            }
        }
    }
}

/// Wait (up to 5 s) for the releases of dropped guards.
pub async fn flush() {
    let tasks: Vec<JoinHandle<()>> = RELEASES
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(tasks)).await;
}

/// What [`begin`] found, for the report.
pub struct Begun {
    pub guard: Guard,
    /// A line about an interrupted run that was recovered.
    pub recovered: Option<String>,
    /// The workload as the recovery read it, when nothing was changed.
    pub seen: Option<serde_json::Value>,
}

/// Before anything changes: take the deploy lock (waiting for another run
/// up to `lock-timeout`), then recover an interrupted run's orphaned change.
/// Errors are (exit code, message): 3 for a lock timeout or a failed
/// recovery, 78 for an API failure.
#[allow(clippy::too_many_arguments)]
pub async fn begin(
    client: &kube::Client,
    rule: crate::k8s::kind::StatusRule,
    ns: &str,
    kind: &str,
    name: &str,
    options: &Reliability,
    recovery_timeout: Duration,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Begun, (crate::ExitCode, String)> {
    let mut guard = Guard { held: None };
    if options.lock {
        // Said at once (not when the wait is over), then on the heartbeat.
        let acquired = acquire(
            client,
            ns,
            kind,
            name,
            &options.identity,
            options.lock_timeout,
            |holder, waited| {
                let holder = crate::text::one_line(holder);
                let line = if waited < Duration::from_secs(1) {
                    format!(
                        "waiting for the deploy lock lease/{} held by {holder} (up to {})",
                        lease_name(kind, name),
                        humantime::format_duration(options.lock_timeout)
                    )
                } else {
                    format!(
                        "still waiting for the deploy lock lease/{} held by {holder} ({}s of up to {})",
                        lease_name(kind, name),
                        waited.as_secs(),
                        humantime::format_duration(options.lock_timeout)
                    )
                };
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                tracing::info!("{line}");
            },
        )
        .await;
        match acquired {
            Ok(Acquired::Held(h)) => {
                tracing::info!(
                    "holding the deploy lock lease/{} as {}",
                    h.lease,
                    h.identity
                );
                guard.held = Some(h);
            }
            Ok(Acquired::Unlocked(why)) => tracing::warn!("{why}"),
            Err(e @ LockError::Timeout { .. }) => {
                return Err((crate::ExitCode::RollbackFailed, e.to_string()));
            }
            Err(e @ LockError::NoNamespace { .. }) => {
                return Err((crate::ExitCode::BadInput, e.to_string()));
            }
            Err(e) => return Err((crate::ExitCode::ClusterConfig, e.to_string())),
        }
    }
    let target = crate::recovery::Target {
        client,
        rule,
        ns,
        kind,
        name,
    };
    let (recovered, seen) = match crate::recovery::recover_if_needed(&target, recovery_timeout, out)
        .await
    {
        Ok((crate::recovery::Recovered::Clean, seen)) => (None, seen),
        Ok((crate::recovery::Recovered::Cleared(m), _)) => (Some(m), None),
        Ok((crate::recovery::Recovered::RolledBack { message, .. }, _)) => (Some(message), None),
        Err(m) => return Err((crate::ExitCode::RollbackFailed, m)),
    };
    Ok(Begun {
        guard,
        recovered,
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names() {
        assert_eq!(lease_name("deployment", "web"), "rollguard-deployment-web");
        assert!(lease_name("deployment", &"x".repeat(400)).len() <= 253);
        assert_eq!(
            lease_name("statefulset", "DB_1."),
            "rollguard-statefulset-db-1"
        );
    }

    #[test]
    fn expiry_rules() {
        let mut l = Lease::default();
        assert!(live_holder(&l).is_none());
        l.spec = Some(LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(30),
            renew_time: Some(now()),
            ..Default::default()
        });
        assert_eq!(live_holder(&l).as_deref(), Some("a"));
        l.spec.as_mut().unwrap().renew_time = Some(MicroTime(
            jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60),
        ));
        assert!(live_holder(&l).is_none());
    }
}
