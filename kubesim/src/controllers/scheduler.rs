//! TODO: scheduler.

use serde_json::Value;

use super::Next;
use crate::Sim;

pub fn reconcile(_sim: &Sim) -> Next {
    Next::default()
}

pub fn node_object(_sim: &Sim, name: &str) -> Value {
    serde_json::json!({"metadata": {"name": name}})
}
