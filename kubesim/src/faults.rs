//! Fault injection: make the API server misbehave on purpose, so clients'
//! retry, re-watch and rollback paths can be exercised and measured.
//!
//! The state lives in [`Faults`] (a field of [`crate::Sim`]) and is applied in
//! the request path (`api::http`), the watch streams (`api::watch`) and the
//! write verbs (`api::rest`). `inject::FaultHandle` (from `Handle::faults()`) is
//! the library interface; the binary's `--admin-addr` serves the same operations
//! over plain HTTP (`api::admin`).

use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::error::ApiError;

/// Seed of the fraction RNG unless one is given.
pub const DEFAULT_SEED: u64 = 0x6b75_6265_7369_6d00;

/// "Fail the next `count` requests matching `method` and `path`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailRule {
    /// Requests still to fail.
    pub count: u64,
    /// HTTP method (`GET`, `PATCH`, …); empty or `*` matches any.
    #[serde(default)]
    pub method: String,
    /// A glob over the URL path (`/apis/apps/v1/*`); without glob characters
    /// it is a prefix. Empty matches every path.
    #[serde(default)]
    pub path: String,
    /// 500, 503 or 429 (any 4xx/5xx is accepted).
    #[serde(default = "default_code")]
    pub code: u16,
    /// Seconds for `Retry-After` and `details.retryAfterSeconds`.
    #[serde(default)]
    pub retry_after: Option<u64>,
}

fn default_code() -> u16 {
    503
}

impl FailRule {
    fn matches(&self, method: &str, path: &str) -> bool {
        let m = self.method.trim();
        if !(m.is_empty() || m == "*" || m.eq_ignore_ascii_case(method)) {
            return false;
        }
        path_matches(&self.path, path)
    }
}

/// A glob (`*`, `?`, `[..]`) over the whole path, or a prefix when the
/// pattern has no glob characters.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    if !pattern.contains(['*', '?', '[']) {
        return path.starts_with(pattern);
    }
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches(path))
}

/// A random fraction of failing requests.
struct Fraction {
    fraction: f64,
    codes: Vec<u16>,
    rng: StdRng,
}

/// A pending "409 on the next write of this object".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRule {
    /// Resource plural (`deployments`, `leases`, …).
    pub resource: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default)]
    pub namespace: String,
    pub name: String,
}

#[derive(Default)]
struct State {
    fail_next: Vec<FailRule>,
    fraction: Option<Fraction>,
    latency: Duration,
    conflicts: Vec<ConflictRule>,
    /// SelfSubjectRulesReview answers `incomplete: true` with no rules (an
    /// authorizer that cannot enumerate them, e.g. a webhook).
    incomplete_rules: bool,
}

/// Shared fault state of one simulated cluster.
pub struct Faults {
    state: Mutex<State>,
    /// Bumped by `drop_watches`; every watch stream ends when it changes.
    drops: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            drops: watch::channel(0).0,
        }
    }
}

/// A summary of what is armed (for the admin API).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultsView {
    pub fail_next: Vec<FailRule>,
    pub fail_fraction: Option<f64>,
    pub fail_fraction_codes: Vec<u16>,
    pub latency_ms: u64,
    pub conflicts: Vec<ConflictRule>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("faults lock")
    }

    /// The error to answer instead of serving this request, if a rule fires.
    pub fn check(&self, method: &str, path: &str) -> Option<ApiError> {
        let mut st = self.lock();
        if let Some(i) = st
            .fail_next
            .iter()
            .position(|r| r.count > 0 && r.matches(method, path))
        {
            let rule = st.fail_next[i].clone();
            st.fail_next[i].count -= 1;
            if st.fail_next[i].count == 0 {
                st.fail_next.remove(i);
            }
            return Some(injected(rule.code, rule.retry_after));
        }
        if let Some(f) = st.fraction.as_mut()
            && !f.codes.is_empty()
            && f.rng.random_bool(f.fraction.clamp(0.0, 1.0))
        {
            let code = f.codes[f.rng.random_range(0..f.codes.len())];
            return Some(injected(code, None));
        }
        None
    }

    /// Latency added to every response.
    pub fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// Whether the next write of this object must fail with 409 (consumes it).
    pub fn take_conflict(&self, resource: &str, ns: &str, name: &str) -> bool {
        let mut st = self.lock();
        match st
            .conflicts
            .iter()
            .position(|c| c.resource == resource && c.namespace == ns && c.name == name)
        {
            Some(i) => {
                st.conflicts.remove(i);
                true
            }
            None => false,
        }
    }

    /// A receiver that changes whenever watches must be dropped.
    pub fn drops(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    pub fn drop_watches(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    pub fn fail_next(&self, rule: FailRule) {
        if rule.count > 0 {
            self.lock().fail_next.push(rule);
        }
    }

    pub fn fail_fraction(&self, fraction: f64, codes: &[u16], seed: u64) {
        self.lock().fraction = (fraction > 0.0 && !codes.is_empty()).then(|| Fraction {
            fraction,
            codes: codes.to_vec(),
            rng: StdRng::seed_from_u64(seed),
        });
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    pub fn set_incomplete_rules(&self, on: bool) {
        self.lock().incomplete_rules = on;
    }

    /// Whether rules reviews answer `incomplete` (see [`State`]).
    pub fn incomplete_rules(&self) -> bool {
        self.lock().incomplete_rules
    }

    pub fn conflict_next_write(&self, rule: ConflictRule) {
        self.lock().conflicts.push(rule);
    }

    /// Disarm every fault (the listener state is not touched).
    pub fn clear(&self) {
        *self.lock() = State::default();
    }

    pub fn view(&self) -> FaultsView {
        let st = self.lock();
        FaultsView {
            fail_next: st.fail_next.clone(),
            fail_fraction: st.fraction.as_ref().map(|f| f.fraction),
            fail_fraction_codes: st
                .fraction
                .as_ref()
                .map(|f| f.codes.clone())
                .unwrap_or_default(),
            latency_ms: st.latency.as_millis() as u64,
            conflicts: st.conflicts.clone(),
        }
    }
}

/// The upstream Status of an injected failure.
pub fn injected(code: u16, retry_after: Option<u64>) -> ApiError {
    let (reason, message) = match code {
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later.".to_string(),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_string(),
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted".to_string(),
        ),
        409 => (
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again"
                .to_string(),
        ),
        _ => (
            "InternalError",
            "an error on the server (\"injected fault\") has prevented the request from succeeding"
                .to_string(),
        ),
    };
    let mut e = ApiError::new(code, reason, message);
    if let Some(secs) = retry_after {
        e.retry_after = Some(secs);
        e.details = Some(json!({}));
    }
    e
}
