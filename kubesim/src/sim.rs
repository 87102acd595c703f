//! The shared state of one simulated cluster. It sits below the API server
//! and the controllers (which all take a `&Sim`), so it holds only their
//! state types, never their logic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::api::listener_ctl::ListenerCtl;
use crate::api::metrics::Metrics;
use crate::auth;
use crate::clock::Clock;
use crate::config::Config;
use crate::controllers::kubelet::state::KubeletState;
use crate::controllers::state::{AutoscalerState, EventCache};
use crate::faults::Faults;
use crate::scenario::{ImageBehaviour, Scenarios};
use crate::store::Store;

/// Shared state of one simulated cluster: what the API server and the
/// controllers both see.
pub struct Sim {
    pub store: Arc<Store>,
    pub clock: Arc<Clock>,
    pub identities: RwLock<auth::Identities>,
    pub scenarios: RwLock<Scenarios>,
    /// Container logs the kubelet wrote: (namespace, pod, container) → lines.
    pub logs: Mutex<BTreeMap<(String, String, String), ContainerLogs>>,
    /// The kubelet's private runtime state (containers, back-offs, timers).
    pub kubelet: Mutex<KubeletState>,
    /// The event recorder's correlation state (repeats, similar events).
    pub event_cache: Mutex<EventCache>,
    /// The simulated cluster autoscaler's state (unused when disabled).
    pub autoscaler: Mutex<AutoscalerState>,
    pub config: Config,
    /// Requests and response bytes per User-Agent, counted by the API server.
    pub metrics: Metrics,
    /// Injected faults (see [`crate::faults`]).
    pub faults: Faults,
    /// The API server's listener (stoppable by fault injection).
    pub listener: ListenerCtl,
}

/// The log lines of one container: the running instance and the previous
/// (terminated) one, as `kubectl logs` and `logs --previous` read them.
#[derive(Debug, Clone, Default)]
pub struct ContainerLogs {
    pub current: Vec<String>,
    pub previous: Option<Vec<String>>,
}

impl Sim {
    /// The kubelet's behaviour for an image.
    pub fn behaviour(&self, image: &str) -> ImageBehaviour {
        self.scenarios
            .read()
            .expect("scenarios lock")
            .behaviour(image)
    }
}
