//! The controllers, the scheduler and the kubelet of the simulated nodes.
//!
//! Each controller is a level-triggered loop: it reconciles everything it
//! owns, then sleeps until the store changes, its next simulated-time
//! deadline passes, or the cluster shuts down. They all write through the
//! store directly (as the real controllers write through the API server).

pub mod autoscaler;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod history;
pub mod kubelet;
pub mod pods;
pub mod quantity;
pub mod replicaset;
pub mod replicationcontroller;
pub mod scheduler;
pub mod state;
pub mod statefulset;

use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::watch;

use crate::sim::Sim;
use crate::error::ApiResult;
use crate::resources::res;

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

/// What one reconcile pass asks of the loop.
#[derive(Debug, Default, Clone, Copy)]
pub struct Next {
    /// Wake at this simulated time even if nothing changes.
    pub wake_at: Option<Timestamp>,
}

impl Next {
    /// Keep the earliest of two wake-up times.
    pub fn at(&mut self, t: Timestamp) {
        self.wake_at = Some(match self.wake_at {
            Some(cur) if cur <= t => cur,
            _ => t,
        });
    }

    /// Fold in the outcome of one object's sync: wake at its deadline, or
    /// (after `log` reports the error) retry one simulated second from `now`.
    pub fn after_sync(
        &mut self,
        now: Timestamp,
        result: ApiResult<Option<Timestamp>>,
        log: impl FnOnce(&crate::error::ApiError),
    ) {
        match result {
            Ok(Some(t)) => self.at(t),
            Ok(None) => {}
            Err(e) => {
                log(&e);
                self.at(now + std::time::Duration::from_secs(1));
            }
        }
    }
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
    scheduler::node_object(sim, name)
}

/// `metadata.ownerReferences` entry for a controller owner.
pub fn controller_ref(owner: &Value) -> Value {
    serde_json::json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The uid of an object's controller owner, if any.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .and_then(|r| r["uid"].as_str())
}

/// Append `owner_ref` to an object's `metadata.ownerReferences`.
pub fn push_owner_ref(obj: &mut Value, owner_ref: &Value) {
    match obj["metadata"]["ownerReferences"].as_array_mut() {
        Some(refs) => refs.push(owner_ref.clone()),
        None => obj["metadata"]["ownerReferences"] = serde_json::json!([owner_ref.clone()]),
    }
}

/// Drop the ownerReferences to `owner_uid` (the whole field when none is
/// left); false when the object has no ownerReferences at all.
pub fn remove_owner_ref(obj: &mut Value, owner_uid: &str) -> bool {
    let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() else {
        return false;
    };
    refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
    if refs.is_empty()
        && let Some(m) = obj["metadata"].as_object_mut()
    {
        m.remove("ownerReferences");
    }
    true
}

/// Write `status` to `obj` (of resource `resource`) unless it is already
/// there; a same-named object with another uid is left alone.
pub fn write_status(sim: &Sim, resource: &str, obj: &Value, status: &Value) -> ApiResult<()> {
    if obj["status"] == *status {
        return Ok(());
    }
    let my_uid = deployment::util::uid(obj);
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    sim.store
        .modify(res(resource), ns, deployment::util::name(obj), |cur| {
            if deployment::util::uid(cur) != my_uid {
                return Ok(false);
            }
            cur["status"] = status.clone();
            Ok(true)
        })?;
    Ok(())
}
