//! The controllers, the scheduler and the kubelet of the simulated nodes.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use crate::Sim;

/// Start every controller loop; returns their tasks.
pub fn spawn(_sim: Arc<Sim>, _shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}

/// A Node object for a simulated node with the configured capacity.
pub fn node_object(_sim: &Sim, name: &str) -> Value {
    serde_json::json!({"metadata": {"name": name}})
}
