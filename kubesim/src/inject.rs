//! The library interface to fault injection on a running cluster (what
//! `Handle::faults()` gives): arms [`crate::faults::Faults`] and stops or
//! restarts the API server's listener.

use std::sync::Arc;
use std::time::Duration;

use crate::faults::{ConflictRule, DEFAULT_SEED, FailRule, FaultsView};
use crate::sim::Sim;

/// The library interface to one cluster's faults and listener.
#[derive(Clone)]
pub struct FaultHandle {
    sim: Arc<Sim>,
}

impl FaultHandle {
    pub fn new(sim: Arc<Sim>) -> Self {
        Self { sim }
    }

    /// End every open watch stream now (cleanly: clients re-watch).
    pub fn drop_watches(&self) {
        self.sim.faults.drop_watches();
    }

    /// Fail the next `n` requests matching `method` (`"*"` for any) and
    /// `path_glob` with `code`, optionally with `Retry-After`.
    pub fn fail_next(
        &self,
        n: u64,
        method: &str,
        path_glob: &str,
        code: u16,
        retry_after: Option<u64>,
    ) {
        self.sim.faults.fail_next(FailRule {
            count: n,
            method: method.to_string(),
            path: path_glob.to_string(),
            code,
            retry_after,
        });
    }

    /// Fail a random `fraction` (0..=1) of all requests with one of `codes`,
    /// from an RNG seeded with [`DEFAULT_SEED`], until cleared.
    pub fn fail_fraction(&self, fraction: f64, codes: &[u16]) {
        self.sim.faults.fail_fraction(fraction, codes, DEFAULT_SEED);
    }

    /// As `fail_fraction`, with an explicit seed.
    pub fn fail_fraction_seeded(&self, fraction: f64, codes: &[u16], seed: u64) {
        self.sim.faults.fail_fraction(fraction, codes, seed);
    }

    /// Delay every response by `ms` milliseconds (0 turns it off).
    pub fn latency(&self, ms: u64) {
        self.sim.faults.set_latency(Duration::from_millis(ms));
    }

    /// SelfSubjectRulesReviews answer `incomplete: true` without rules, as
    /// with an authorizer that cannot list them; access reviews still answer.
    pub fn incomplete_rules_review(&self, on: bool) {
        self.sim.faults.set_incomplete_rules(on);
    }

    /// Answer 409 Conflict to the next update/patch of this object.
    pub fn conflict_next_write(&self, resource_plural: &str, ns: &str, name: &str) {
        self.sim.faults.conflict_next_write(ConflictRule {
            resource: resource_plural.to_string(),
            namespace: ns.to_string(),
            name: name.to_string(),
        });
    }

    /// Forget the store's history: watches from older resourceVersions get 410.
    pub fn compact(&self) {
        self.sim.store.compact();
    }

    /// Stop accepting connections and close the open ones (store kept).
    pub async fn stop_listener(&self) {
        crate::api::listener::stop(&self.sim).await;
    }

    /// Listen again on the same address.
    pub async fn start_listener(&self) -> std::io::Result<()> {
        crate::api::listener::start(&self.sim).await
    }

    /// Whether the listener is accepting connections.
    pub fn listening(&self) -> bool {
        crate::api::listener::running(&self.sim)
    }

    /// Disarm every fault (fail rules, fraction, latency, pending conflicts).
    pub fn clear(&self) {
        self.sim.faults.clear();
    }

    pub fn view(&self) -> FaultsView {
        self.sim.faults.view()
    }
}
