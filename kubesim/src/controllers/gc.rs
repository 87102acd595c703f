//! The garbage collector, after upstream `pkg/controller/garbagecollector/`
//! with background propagation: an object whose owners are all gone is
//! deleted (pods gracefully, through the API's delete); an object with some
//! owners gone loses just those dangling ownerReferences.
//!
//! One pass lists the dependents first and the live uids second, so an
//! owner created after the first list can never look missing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::next::Next;
use crate::api::{self, DeleteOptions};
use crate::resources::{RESOURCES, ResourceType};
use crate::sim::Sim;

pub fn reconcile(sim: &Sim) -> Next {
    let mut next = Next::default();
    let dependents = dependents(sim);
    if dependents.is_empty() {
        return next;
    }
    let live = live_uids(sim);
    for (rt, obj) in dependents {
        let owners = owner_uids(&obj);
        let dangling: Vec<&str> = owners
            .iter()
            .copied()
            .filter(|u| !live.contains(*u))
            .collect();
        if dangling.is_empty() {
            continue;
        }
        let result = if dangling.len() == owners.len() {
            delete(sim, rt, &obj)
        } else {
            remove_owner_refs(sim, rt, &obj, &dangling)
        };
        if let Err(e) = result {
            tracing::debug!(object = %obj["metadata"]["name"], error = %e, "garbage collection failed; retrying");
            next.at(sim.clock.now() + Duration::from_secs(1));
        }
    }
    next
}

/// Kinds that are stored objects which may own or be owned (events are neither).
fn collectable() -> impl Iterator<Item = &'static ResourceType> {
    RESOURCES
        .iter()
        .filter(|rt| rt.plural != "events" && rt.verbs.contains(&"list"))
}

/// Objects with ownerReferences that are not already being deleted.
fn dependents(sim: &Sim) -> Vec<(&'static ResourceType, Arc<Value>)> {
    let mut out = Vec::new();
    for rt in collectable() {
        for obj in sim.store.list(rt, None).0 {
            let has_owners = obj["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            if has_owners && obj["metadata"]["deletionTimestamp"].is_null() {
                out.push((rt, obj));
            }
        }
    }
    out
}

fn live_uids(sim: &Sim) -> HashSet<String> {
    collectable()
        .flat_map(|rt| sim.store.list(rt, None).0)
        .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_string))
        .collect()
}

fn owner_uids(obj: &Value) -> Vec<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).collect())
        .unwrap_or_default()
}

fn location(obj: &Value) -> (&str, &str) {
    (
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or(""),
    )
}

fn delete(sim: &Sim, rt: &'static ResourceType, obj: &Value) -> anyhow::Result<()> {
    let (ns, name) = location(obj);
    let opts = DeleteOptions {
        preconditions_uid: obj["metadata"]["uid"].as_str().map(str::to_string),
        ..DeleteOptions::default()
    };
    match api::delete_object(sim, rt, ns, name, &opts) {
        Ok(_) => Ok(()),
        // Gone already, or replaced by a new object of the same name.
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

fn remove_owner_refs(
    sim: &Sim,
    rt: &'static ResourceType,
    obj: &Value,
    dangling: &[&str],
) -> anyhow::Result<()> {
    let (ns, name) = location(obj);
    let my_uid = obj["metadata"]["uid"].clone();
    let result = sim.store.modify(rt, ns, name, |cur| {
        if cur["metadata"]["uid"] != my_uid {
            return Ok(false);
        }
        let Some(refs) = cur["metadata"]["ownerReferences"].as_array_mut() else {
            return Ok(false);
        };
        let before = refs.len();
        refs.retain(|r| !r["uid"].as_str().is_some_and(|u| dangling.contains(&u)));
        Ok(refs.len() != before)
    });
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owner_uids_of_an_object() {
        let o = json!({"metadata": {"ownerReferences": [{"uid": "a"}, {"uid": "b"}]}});
        assert_eq!(owner_uids(&o), ["a", "b"]);
        assert!(owner_uids(&json!({"metadata": {}})).is_empty());
    }
}
