//! The controllers, the scheduler and the kubelet of the simulated nodes.
//!
//! Each controller is a level-triggered loop: it reconciles everything it
//! owns, then sleeps until the store changes, its next simulated-time
//! deadline passes, or the cluster shuts down. They all write through the
//! store directly (as the real controllers write through the API server).
//!
//! This module is the wiring (the loops); what the controllers share lives
//! below them in `meta` (object helpers), `next` and `state`.

pub mod autoscaler;
pub mod daemonset;
pub mod deletion;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod history;
pub mod kubelet;
pub mod meta;
pub mod next;
pub mod nodes;
pub mod pods;
pub mod replicaset;
pub mod replicationcontroller;
pub mod scheduler;
pub mod state;
pub mod statefulset;

pub use meta::{controller_ref, controller_uid, push_owner_ref, remove_owner_ref, write_status};
pub use next::Next;
// Kept at its old path for callers; the parser sits below the API server.
pub use crate::quantity;

use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::watch;

use crate::sim::Sim;

/// Start every controller loop; returns their tasks.
pub fn spawn(sim: Arc<Sim>, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if sim.config.autoscaler.is_some() {
        tasks.push(tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "autoscaler",
            autoscaler::reconcile,
        )));
    }
    tasks.extend([
        tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "deployment",
            deployment::reconcile,
        )),
        tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "replicaset",
            replicaset::reconcile,
        )),
        tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "scheduler",
            scheduler::reconcile,
        )),
        tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "kubelet",
            kubelet::reconcile,
        )),
        tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "replicationcontroller",
            replicationcontroller::reconcile,
        )),
        tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "statefulset",
            statefulset::reconcile,
        )),
        tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "daemonset",
            daemonset::reconcile,
        )),
        tokio::spawn(run_loop(
            sim.clone(),
            shutdown.clone(),
            "endpoints",
            endpoints::reconcile,
        )),
        tokio::spawn(run_loop(sim, shutdown, "gc", gc::reconcile)),
    ]);
    tasks
}

/// Run `reconcile` whenever the store changes or a requested deadline passes.
pub async fn run_loop<F>(
    sim: Arc<Sim>,
    mut shutdown: watch::Receiver<bool>,
    name: &'static str,
    reconcile: F,
) where
    F: Fn(&Sim) -> Next,
{
    let mut clock_epoch = sim.clock.subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Register for change notifications before reading, so a change made
        // while reconciling wakes the next wait.
        let changed = sim.store.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let next = reconcile(&sim);
        tracing::trace!(controller = name, ?next, "reconciled");
        let sleep = sleep_until_opt(&sim, next.wake_at);
        tokio::select! {
            _ = changed => {}
            _ = sleep => {}
            _ = clock_epoch.changed() => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn sleep_until_opt(sim: &Sim, t: Option<Timestamp>) -> impl Future<Output = ()> + 'static {
    let wait = t.map(|t| sim.clock.real_until(t));
    async move {
        match wait {
            Some(w) => tokio::time::sleep(w).await,
            None => std::future::pending::<()>().await,
        }
    }
}

/// A Node object for a simulated node with the configured capacity.
pub fn node_object(sim: &Sim, name: &str) -> Value {
    nodes::node_object(sim, name)
}
