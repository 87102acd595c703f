//! What one kubelet pass needs about one pod, and the events it collects.

use rand::rngs::StdRng;
use serde_json::Value;

use super::state::Ctr;
use crate::sim::Sim;

/// What a pass needs about one pod.
pub(super) struct Ctx<'a> {
    pub(super) sim: &'a Sim,
    pub(super) rng: &'a mut StdRng,
    pub(super) pod: &'a Value,
    pub(super) ns: String,
    pub(super) pod_name: String,
    pub(super) uid: String,
    pub(super) node: String,
    pub(super) restart_policy: String,
    pub(super) events: Vec<(String, &'static str, &'static str, String)>,
}

impl Ctx<'_> {
    pub(super) fn event(
        &mut self,
        c: &Ctr,
        type_: &'static str,
        reason: &'static str,
        msg: String,
    ) {
        self.events.push((c.field_path(), type_, reason, msg));
    }

    pub(super) fn spec_of(&self, c: &Ctr) -> &Value {
        let key = if c.init {
            "initContainers"
        } else {
            "containers"
        };
        self.pod["spec"][key]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|s| s["name"].as_str() == Some(c.name.as_str()))
            })
            .unwrap_or(&Value::Null)
    }

    pub(super) fn log_key(&self, c: &Ctr) -> (String, String, String) {
        (self.ns.clone(), self.pod_name.clone(), c.name.clone())
    }
}
