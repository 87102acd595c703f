//! How to start a simulated cluster.

use std::net::SocketAddr;
use std::time::Duration;

use crate::scenario::Scenarios;

/// How to start a simulated cluster.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of simulated nodes (`node-1` … `node-N`).
    pub nodes: usize,
    /// Allocatable cpu per node (a Kubernetes quantity, e.g. "2" or "1500m").
    pub node_cpu: String,
    /// Allocatable memory per node (e.g. "4Gi").
    pub node_memory: String,
    /// Allocatable pods per node.
    pub node_pods: u32,
    /// Simulated-time factor: 10 means ten simulated seconds per real second.
    pub speed: f64,
    /// Serve HTTPS with a generated CA (default) or plain HTTP.
    pub tls: bool,
    /// Address to bind; port 0 picks a free one.
    pub bind: SocketAddr,
    /// The kubelet's image vocabulary, overrides and declared registry.
    pub scenarios: Scenarios,
    /// The namespace created besides `default`, `kube-system`, `kube-public`.
    pub namespaces: Vec<String>,
    /// Seed of the kubelet's start-up variation (sandbox, pull, container
    /// start, status sync): the same seed gives the same sequence of delays.
    pub startup_seed: u64,
    /// A simulated cluster autoscaler (off when None).
    pub autoscaler: Option<AutoscalerConfig>,
    /// Serve the simulated pods' metrics (`crate::metrics`) over plain HTTP
    /// on this address (port 0 picks a free one); off when None.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve streaming lists (`watch` with `sendInitialEvents=true`), as a
    /// kube-apiserver with the WatchList feature gate on (1.32, 1.34 and
    /// later); off, such a watch is refused with 422 as by 1.33 and by
    /// servers before 1.32.
    pub watch_list: bool,
}

/// The simulated cluster autoscaler: one node group of the configured node
/// shape, scaled up (never down) for pods the scheduler cannot place.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalerConfig {
    /// The node group's maximum size (all nodes of the cluster).
    pub max_nodes: usize,
    /// Simulated time from the scale-up decision to the new node being Ready.
    pub scale_up_delay: Duration,
}

impl Default for AutoscalerConfig {
    /// Two nodes more than the default cluster, 30 s per scale-up.
    fn default() -> Self {
        Self {
            max_nodes: Config::default().nodes + 2,
            scale_up_delay: Duration::from_secs(30),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nodes: 3,
            node_cpu: "2".into(),
            node_memory: "4Gi".into(),
            node_pods: 110,
            speed: 1.0,
            tls: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            scenarios: Scenarios::default(),
            namespaces: Vec::new(),
            startup_seed: 0x6b75_6265_7369_6d00,
            autoscaler: None,
            metrics_listen: None,
            watch_list: true,
        }
    }
}
