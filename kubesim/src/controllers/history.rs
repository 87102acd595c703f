//! ControllerRevisions, shared by the StatefulSet and DaemonSet
//! controllers, after upstream `pkg/controller/history/controller_history.go`
//! and the `getPatch`/`newRevision` helpers of both controllers: a revision
//! holds the owner's pod template in patch form
//! (`{"spec": {"template": {..., "$patch": "replace"}}}`), is named
//! `<owner>-<hash>` and carries a monotonically increasing `revision`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::meta::{
    compute_hash, controller_ref, controller_uid, is_deleting, name, push_owner_ref,
    selector_matches, uid,
};
use crate::error::ApiResult;
use crate::resources::res;
use crate::sim::Sim;

/// The StatefulSet revision label (v1.36: `controller.kubernetes.io/hash`).
pub const STS_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The DaemonSet revision label, also the pod label of both controllers.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Upstream `getPatch`: the owner's template as a replacing patch.
pub fn patch_of(owner: &Value) -> Value {
    let mut template = owner["spec"]["template"].clone();
    if let Some(m) = template.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// The pod template a revision holds (its patch without the directive).
pub fn template_of(revision: &Value) -> Value {
    let mut t = revision["data"]["spec"]["template"].clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    t
}

/// `revision` number of a ControllerRevision.
pub fn number(revision: &Value) -> i64 {
    revision["revision"].as_i64().unwrap_or(0)
}

/// Upstream `HashControllerRevision` / `ComputeHash`: the revision's data
/// (or template) plus the collision count, safe-encoded.
pub fn hash(data: &Value, collision_count: i32) -> String {
    compute_hash(data, Some(collision_count))
}

/// The live revisions a parent controls (upstream `ListControllerRevisions`
/// filtered by controllerRef), sorted by revision number then name.
pub fn owned(sim: &Sim, parent: &Value) -> Vec<Arc<Value>> {
    let ns = parent["metadata"]["namespace"].as_str().unwrap_or("");
    let (all, _) = sim.store.list(res("controllerrevisions.apps"), Some(ns));
    let mut revs: Vec<Arc<Value>> = all
        .into_iter()
        .filter(|r| controller_uid(r) == Some(uid(parent)) && !is_deleting(r))
        .collect();
    revs.sort_by(|a, b| number(a).cmp(&number(b)).then_with(|| name(a).cmp(name(b))));
    revs
}

/// Adopt orphaned revisions matching the parent's selector (upstream
/// `ClaimControllerRevisions`); returns the adopted ones.
pub fn adopt_orphans(sim: &Sim, parent: &Value) -> Vec<Arc<Value>> {
    let ns = parent["metadata"]["namespace"].as_str().unwrap_or("");
    let selector = &parent["spec"]["selector"];
    let (all, _) = sim.store.list(res("controllerrevisions.apps"), Some(ns));
    let mut adopted = Vec::new();
    for r in all {
        if controller_uid(&r).is_some()
            || is_deleting(&r)
            || !selector_matches(selector, &r["metadata"]["labels"])
        {
            continue;
        }
        let owner = controller_ref(parent);
        if let Ok(o) = sim
            .store
            .modify(res("controllerrevisions.apps"), ns, name(&r), |cur| {
                if controller_uid(cur).is_some() {
                    return Ok(false);
                }
                push_owner_ref(cur, &owner);
                Ok(true)
            })
            && controller_uid(&o) == Some(uid(parent))
        {
            adopted.push(o);
        }
    }
    adopted
}

/// What a new revision looks like, before hashing (upstream `NewControllerRevision`).
pub struct Proposal<'a> {
    pub parent: &'a Value,
    pub data: Value,
    /// What the name's hash is computed from (the data for StatefulSets,
    /// the template for DaemonSets).
    pub hash_input: Value,
    pub revision: i64,
    /// The label carrying the hash on the revision.
    pub hash_label: &'a str,
}

impl Proposal<'_> {
    fn object(&self, hash: &str) -> Value {
        let mut labels: Map<String, Value> = self.parent["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        labels.insert(self.hash_label.into(), json!(hash));
        let mut meta = json!({
            "name": format!("{}-{hash}", name(self.parent)),
            "namespace": self.parent["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [controller_ref(self.parent)],
        });
        if let Some(a) = self.parent["metadata"]["annotations"]
            .as_object()
            .filter(|a| !a.is_empty())
        {
            meta["annotations"] = Value::Object(a.clone());
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": meta,
            "data": self.data,
            "revision": self.revision,
        })
    }
}

/// Upstream `realHistory.CreateControllerRevision`: create the revision as
/// `<parent>-<hash>`; when the name is taken by a revision with other data
/// (a hash collision), bump the collision count and retry. Returns the
/// revision (possibly an existing equal one) and the collision count used.
pub fn create(
    sim: &Sim,
    p: &Proposal<'_>,
    mut collision_count: i32,
) -> ApiResult<(Arc<Value>, i32)> {
    let rt = res("controllerrevisions.apps");
    let ns = p.parent["metadata"]["namespace"].as_str().unwrap_or("");
    loop {
        let h = hash(&p.hash_input, collision_count);
        let obj = p.object(&h);
        match sim.store.create(rt, ns, obj) {
            Ok(created) => return Ok((created, collision_count)),
            Err(e) if e.code == 409 => {
                let existing = sim.store.get(rt, ns, &format!("{}-{h}", name(p.parent)))?;
                if controller_uid(&existing) == Some(uid(p.parent)) && existing["data"] == p.data {
                    return Ok((existing, collision_count));
                }
                collision_count = collision_count.saturating_add(1);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Upstream `UpdateControllerRevision`: give an existing revision a new number.
pub fn renumber(sim: &Sim, revision: &Value, number_: i64) -> ApiResult<Arc<Value>> {
    let ns = revision["metadata"]["namespace"].as_str().unwrap_or("");
    sim.store
        .modify(res("controllerrevisions.apps"), ns, name(revision), |cur| {
            if number(cur) == number_ {
                return Ok(false);
            }
            cur["revision"] = json!(number_);
            Ok(true)
        })
}

/// Upstream `nextRevision`: one more than the highest.
pub fn next_number(revisions: &[Arc<Value>]) -> i64 {
    revisions.iter().map(|r| number(r)).max().unwrap_or(0) + 1
}

/// Delete the oldest revisions beyond `limit` that no live pod nor the
/// current/update revision uses (upstream `truncateHistory`).
pub fn truncate(sim: &Sim, revisions: &[Arc<Value>], in_use: &[&str], limit: i64) {
    let unused: Vec<&Arc<Value>> = revisions
        .iter()
        .filter(|r| !in_use.contains(&name(r)))
        .collect();
    let excess = unused.len().saturating_sub(limit.max(0) as usize);
    for r in unused.into_iter().take(excess) {
        let ns = r["metadata"]["namespace"].as_str().unwrap_or("");
        let _ = sim
            .store
            .delete(res("controllerrevisions.apps"), ns, name(r));
    }
}

/// The revision to use for `data` (upstream `getStatefulSetRevisions` /
/// DaemonSet `constructHistory`): an equal existing revision, renumbered
/// to be the latest when it is not; otherwise a newly created one.
/// Returns (revision, collision count, all revisions after the change).
pub fn ensure(
    sim: &Sim,
    parent: &Value,
    data: Value,
    hash_input: Value,
    hash_label: &str,
    collision_count: i32,
) -> ApiResult<(Arc<Value>, i32, Vec<Arc<Value>>)> {
    let mut revisions = owned(sim, parent);
    if revisions.is_empty() || revisions.iter().all(|r| r["data"] != data) {
        let adopted = adopt_orphans(sim, parent);
        if !adopted.is_empty() {
            revisions = owned(sim, parent);
        }
    }
    let next = next_number(&revisions);
    let equal: Vec<&Arc<Value>> = revisions.iter().filter(|r| r["data"] == data).collect();
    if let Some(last) = equal.last() {
        if number(last) == next - 1 {
            let r = (*last).clone();
            return Ok((r, collision_count, revisions));
        }
        let r = renumber(sim, last, next)?;
        let revisions = owned(sim, parent);
        return Ok((r, collision_count, revisions));
    }
    let proposal = Proposal {
        parent,
        data,
        hash_input,
        revision: next,
        hash_label,
    };
    let (r, cc) = create(sim, &proposal, collision_count)?;
    let revisions = owned(sim, parent);
    Ok((r, cc, revisions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_form_and_template_roundtrip() {
        let set = json!({"spec": {"template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db"}]}}}});
        let p = patch_of(&set);
        assert_eq!(p["spec"]["template"]["$patch"], "replace");
        let rev = json!({"data": p});
        assert_eq!(template_of(&rev), set["spec"]["template"]);
        let h = hash(&rev["data"], 0);
        assert!(!h.is_empty() && h.len() <= 10);
        assert_ne!(h, hash(&rev["data"], 1));
    }
}
