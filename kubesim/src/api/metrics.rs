//! Requests, response bytes and watch events per User-Agent, counted by the
//! API server (for benchmarks and the admin API).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Requests and response bytes per User-Agent (for benchmarks).
#[derive(Debug, Default)]
pub struct Metrics {
    by_agent: Mutex<BTreeMap<String, AgentStats>>,
    /// Requests per User-Agent and request shape (`api::http::request_shape`).
    by_request: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

/// Counters of one User-Agent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStats {
    pub requests: u64,
    pub response_bytes: u64,
    pub watch_events: u64,
}

impl Metrics {
    pub fn record(&self, agent: &str, bytes: u64) {
        let mut m = self.by_agent.lock().expect("metrics lock");
        let s = m.entry(agent.to_string()).or_default();
        s.requests += 1;
        s.response_bytes += bytes;
    }

    pub fn record_stream(&self, agent: &str, bytes: u64) {
        let mut m = self.by_agent.lock().expect("metrics lock");
        let s = m.entry(agent.to_string()).or_default();
        s.watch_events += 1;
        s.response_bytes += bytes;
    }

    /// Count one request under its shape (see `api::http::request_shape`).
    pub fn record_shape(&self, agent: &str, shape: String) {
        let mut m = self.by_request.lock().expect("metrics lock");
        *m.entry(agent.to_string())
            .or_default()
            .entry(shape)
            .or_default() += 1;
    }

    /// A copy of the counters, by User-Agent.
    pub fn snapshot(&self) -> BTreeMap<String, AgentStats> {
        self.by_agent.lock().expect("metrics lock").clone()
    }

    /// Requests by User-Agent, then by request shape (`LIST /api/v1/namespaces/{ns}/pods?labelSelector`).
    pub fn breakdown(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.by_request.lock().expect("metrics lock").clone()
    }

    pub fn reset(&self) {
        self.by_agent.lock().expect("metrics lock").clear();
        self.by_request.lock().expect("metrics lock").clear();
    }
}
