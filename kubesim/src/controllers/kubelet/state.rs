//! The kubelet's runtime state kept outside the API objects (per pod and per
//! container), its timing constants and time arithmetic. Held in `Sim`, so it
//! sits below the kubelet's logic.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// How long a CreateContainerConfigError waits before the kubelet retries
/// (and repeats its events); a ConfigMap/Secret change retries at once.
pub(super) const CONFIG_RETRY: Duration = Duration::from_secs(10);
/// Image pull and crash-loop back-off: 10 s doubling to 300 s.
pub(super) const BACKOFF_INITIAL: u64 = 10;
pub(super) const BACKOFF_MAX: u64 = 300;
/// A container that ran this long resets its crash back-off.
pub(super) const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How long after SIGTERM the simulated apps exit.
pub(super) const EXIT_ON_SIGTERM: Duration = Duration::from_secs(1);
/// From a container's exit to the kubelet acting on it (the PLEG relist
/// that notices the exit, then the pod sync that restarts or backs off).
pub(super) const RELIST: Duration = Duration::from_secs(1);

/// Per-pod runtime state the kubelet keeps outside the API objects.
#[derive(Debug)]
pub struct KubeletState {
    pub(super) pods: HashMap<String, PodRt>,
    /// Images each node has pulled.
    pub(super) images: HashMap<String, HashSet<String>>,
    /// The last pod IP host number handed out per node.
    pub(super) ips: HashMap<String, u32>,
    /// The start-up variation: sandbox, pull, start and status-sync delays.
    pub(super) rng: StdRng,
}

impl Default for KubeletState {
    fn default() -> Self {
        Self::new(crate::config::Config::default().startup_seed)
    }
}

/// A delay in milliseconds: `base..base+spread`, plus `tail..tail+spread`
/// one time in `tail_one_in` (a slow registry, a busy node).
pub(super) fn draw(
    rng: &mut StdRng,
    base: u64,
    spread: u64,
    tail: u64,
    tail_one_in: u32,
) -> Duration {
    let mut ms = base + rng.random_range(0..spread.max(1));
    if tail > 0 && rng.random_ratio(1, tail_one_in.max(1)) {
        ms += tail + rng.random_range(0..spread.max(1));
    }
    Duration::from_millis(ms)
}

impl KubeletState {
    pub fn new(seed: u64) -> Self {
        Self {
            pods: HashMap::new(),
            images: HashMap::new(),
            ips: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Number of pods the kubelets are running (for tests and debugging).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Whether `node` has already pulled `image`.
    pub fn has_image(&self, node: &str, image: &str) -> bool {
        self.images.get(node).is_some_and(|s| s.contains(image))
    }
}

#[derive(Debug)]
pub(super) struct PodRt {
    pub(super) node: String,
    pub(super) ip: String,
    pub(super) start: Timestamp,
    /// When the pod sandbox is ready and containers may be created.
    pub(super) sandbox_at: Timestamp,
    /// resourceVersion of the pod as last processed or written.
    pub(super) seen_rv: String,
    pub(super) wake: Option<Timestamp>,
    pub(super) init: Vec<Ctr>,
    pub(super) app: Vec<Ctr>,
    /// Condition type → (status, lastTransitionTime).
    pub(super) conds: HashMap<&'static str, (bool, Timestamp)>,
    /// Kill started at, containers exit at.
    pub(super) kill: Option<(Timestamp, Timestamp)>,
    pub(super) scheduled_at: Timestamp,
}

#[derive(Debug, Clone)]
pub(super) struct Term {
    pub(super) exit_code: i32,
    pub(super) reason: &'static str,
    pub(super) started: Timestamp,
    pub(super) finished: Timestamp,
    pub(super) container_id: String,
    pub(super) message: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) enum CState {
    /// Not yet looked at.
    New,
    /// Waiting for the previous init container.
    Blocked,
    Pulling {
        until: Timestamp,
        millis: u64,
    },
    /// ErrImagePull; ImagePullBackOff from `show_at`; retry at `until`.
    PullErr {
        msg: String,
        show_at: Timestamp,
        shown: bool,
        until: Timestamp,
    },
    /// Permanent until the spec changes (InvalidImageName, ErrImageNeverPull).
    Stuck,
    ConfigErr {
        retry_at: Timestamp,
    },
    /// Created; the runtime starts it at `at` (then `Started`).
    Starting {
        at: Timestamp,
    },
    Running {
        started: Timestamp,
        ready_at: Option<Timestamp>,
        exit: Option<(Timestamp, i32, &'static str)>,
        next_probe: Option<Timestamp>,
    },
    /// Exited and published as terminated; the kubelet restarts it or backs
    /// off at `act_at`.
    Exited {
        term: Term,
        act_at: Timestamp,
    },
    CrashBackOff {
        until: Timestamp,
    },
    Terminated(Term),
}

#[derive(Debug)]
pub(super) struct Ctr {
    pub(super) name: String,
    pub(super) image: String,
    pub(super) init: bool,
    pub(super) state: CState,
    /// Waiting reason and message shown while not running.
    pub(super) waiting: (String, Option<String>),
    pub(super) restarts: u32,
    /// The last terminated instance of a restarted container.
    pub(super) last: Option<Term>,
    /// The current (or last) instance's container id.
    pub(super) container_id: Option<String>,
    pub(super) pull_backoff: u64,
    pub(super) pull_failures: u32,
    pub(super) crash_backoff: u64,
}

impl Ctr {
    /// One runtime entry per container of a pod spec's container list.
    pub(super) fn list(containers: &Value, init: bool, pod_has_init: bool) -> Vec<Self> {
        containers
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Ctr::new(c, init, pod_has_init))
            .collect()
    }

    pub(super) fn new(c: &Value, init: bool, pod_has_init: bool) -> Self {
        Ctr {
            name: c["name"].as_str().unwrap_or("").to_string(),
            image: c["image"].as_str().unwrap_or("").to_string(),
            init,
            state: if init { CState::Blocked } else { CState::New },
            waiting: (
                if init || pod_has_init {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                }
                .to_string(),
                None,
            ),
            restarts: 0,
            last: None,
            container_id: None,
            pull_backoff: 0,
            pull_failures: 0,
            crash_backoff: 0,
        }
    }

    pub(super) fn field_path(&self) -> String {
        if self.init {
            format!("spec.initContainers{{{}}}", self.name)
        } else {
            format!("spec.containers{{{}}}", self.name)
        }
    }

    pub(super) fn done(&self) -> bool {
        matches!(&self.state, CState::Terminated(t) if t.exit_code == 0)
    }
}

pub(super) fn ms(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::ZERO)
}

pub(super) fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(ms(d)).unwrap_or(t)
}
