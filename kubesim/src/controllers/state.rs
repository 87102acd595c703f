//! State two controllers keep between passes, outside the API objects: the
//! event recorder's correlation cache and the autoscaler's provisioning.
//! Held in `Sim`, so it sits below the controllers that act on it.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

/// The recorder's correlation state (upstream client-go `EventCorrelator`):
/// which event a repeat updates, and the similar-event sets of the aggregator.
#[derive(Debug, Default)]
pub struct EventCache {
    /// Dedupe key → (namespace, event name, count so far).
    pub(super) by_key: HashMap<String, (String, String, i64)>,
    /// Aggregate key (object, type, reason, source) → (distinct messages, last seen).
    pub(super) similar: HashMap<String, (HashSet<String>, Timestamp)>,
}

/// The autoscaler's own state between loops.
#[derive(Debug, Default)]
pub struct AutoscalerState {
    pub(super) next_loop: Option<Timestamp>,
    /// Nodes being provisioned: (Ready at, name).
    pub(super) provisioning: Vec<(Timestamp, String)>,
    /// When the autoscaler started (health and scale-down transitions).
    pub(super) started: Option<Timestamp>,
    /// The scale-up status ("NoActivity" / "InProgress") and since when.
    pub(super) scale_up: Option<(&'static str, Timestamp)>,
}
