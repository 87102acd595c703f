//! The adapter to kubesim's cluster-autoscaler simulation
//! (`kubesim::Config::autoscaler`). It is compiled in with the bench's
//! `kubesim-autoscaler` feature, once kubesim has that API; without it the
//! autoscaler scenarios are reported as not run, with the reason.

use std::time::Duration;

/// What a scenario asks of the autoscaler (simulated time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autoscale {
    pub max_nodes: usize,
    pub scale_up_delay: Duration,
}

/// This build can run the autoscaler scenarios.
pub const AVAILABLE: bool = cfg!(feature = "kubesim-autoscaler");

/// Why the autoscaler scenarios cannot run in this build.
pub const MISSING: &str = "this build of the bench has no cluster-autoscaler simulation: build it with `--features kubesim-autoscaler` (needs `kubesim::Config::autoscaler`)";

/// Switch the simulation on in `cfg`.
#[cfg(feature = "kubesim-autoscaler")]
pub fn apply(cfg: &mut kubesim::Config, a: Autoscale) -> anyhow::Result<()> {
    cfg.autoscaler = Some(kubesim::AutoscalerConfig {
        max_nodes: a.max_nodes,
        scale_up_delay: a.scale_up_delay,
    });
    Ok(())
}

/// Switch the simulation on in `cfg`.
#[cfg(not(feature = "kubesim-autoscaler"))]
pub fn apply(_cfg: &mut kubesim::Config, _a: Autoscale) -> anyhow::Result<()> {
    anyhow::bail!("{MISSING}")
}
