//! ReplicationControllers: a client-side rolling update in the spirit of
//! kubectl's removed `rolling-update`, fixed for multi-container pods
//! whose selector carries a `version` label. Pure: the plan
//! (new RC, the label that tells the old RC apart), the scaling
//! arithmetic, and what an interrupted run left behind.
//!
//! The new RC is `<base>-<version>`; its selector and template add
//! `<version-label>=<version>`. When the old selector has no key with a
//! different value, the old RC's selector and template (and its pods) get
//! `<version-label>=<old version>` first, so the two selectors are disjoint
//! while every pod keeps the labels the Service selects.
//!
//! (Over 500 lines with its unit tests: the plan and the scaling arithmetic
//! are one rule, tested on captured multi-container RCs.)

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use super::deployment::{self as dep, NotRollable};

mod apply;
mod follow;
pub mod rollout;
use crate::image::Reference;
use crate::k8s::objects::labels_at;

/// On the old RC: the name of the RC it is being rolled to.
pub const ROLLING_UPDATE_TO: &str = "rollguard.dev/rolling-update-to";
/// On the old RC: its replicas before the update (restored on rollback).
pub const ORIGINAL_REPLICAS: &str = "rollguard.dev/original-replicas";
/// On the new RC: the RC it replaces.
pub const ROLLING_UPDATE_FROM: &str = "rollguard.dev/rolling-update-from";
/// On the new RC: the replicas it will end with.
pub const DESIRED_REPLICAS: &str = "rollguard.dev/desired-replicas";
/// On the new RC: the name without the version suffix (how the next run
/// finds it when given the original name).
pub const BASE_NAME: &str = "rollguard.dev/base-name";

/// Everything decided before anything changes.
#[derive(Debug, Clone)]
pub struct RcPlan {
    pub old_name: String,
    pub new_name: String,
    pub base: String,
    pub container: String,
    pub old_image: String,
    pub new_image: String,
    pub version: String,
    pub replicas: i32,
    /// The old RC's selector as read.
    pub old_selector: BTreeMap<String, String>,
    /// The label added to the old RC's selector, template and pods when its
    /// selector did not tell it apart from the new one.
    pub adopt: Option<(String, String)>,
    /// The RC to create (at 0 replicas).
    pub new_rc: Value,
    /// The old RC's `spec.template` as read.
    pub previous_template: Value,
}

impl RcPlan {
    /// The labels both RCs' pods share (the old selector without the version
    /// label): what a Service selecting the old pods keeps selecting.
    pub fn shared_selector(&self, version_label: &str) -> String {
        self.old_selector
            .iter()
            .filter(|(k, _)| k.as_str() != version_label)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A short, stable hash of a template (the old version when nothing better names it).
pub fn template_hash(template: &Value) -> String {
    let mut h = std::hash::DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{:010x}", h.finish() & 0xff_ffff_ffff)
}

/// A version as a DNS-1123 name part: lower-case, `_`/`.` runs kept only as `-`/`.`.
fn name_part(version: &str) -> String {
    version
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '_' { '-' } else { c })
        .collect()
}

/// Plan the rolling update of the RC `old` (raw, as read).
pub fn plan(old: &Value, ask: &dep::Ask<'_>) -> Result<RcPlan, NotRollable> {
    let dep::Ask {
        change: _,
        version: _,
        version_label,
        ..
    } = *ask;
    let old_name = old
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let kind_name = |n: &str| format!("replicationcontroller/{n}");
    // The Deployment planner knows containers, images, tags and versions;
    // its patch applied to a copy gives the new template.
    let p = dep::plan(old, &[], ask).map_err(|e| {
        NotRollable(e.0.replace(&format!("deployment/{old_name}"), &kind_name(&old_name)))
    })?;
    let mut patched = old.clone();
    // Applied to a copy: its `test` of the resourceVersion is for the cluster.
    let edits: Vec<Value> = p
        .patch
        .as_array()
        .into_iter()
        .flatten()
        .filter(|op| op["op"] != "test")
        .cloned()
        .collect();
    let ops: json_patch::Patch = serde_json::from_value(Value::Array(edits))
        .map_err(|e| NotRollable(format!("internal: bad patch: {e}")))?;
    json_patch::patch(&mut patched, &ops).map_err(|e| {
        NotRollable(format!(
            "{} could not be planned: {e}",
            kind_name(&old_name)
        ))
    })?;
    let template_labels = labels_at(old, "/spec/template/metadata/labels");
    let mut old_selector = labels_at(old, "/spec/selector");
    if old_selector.is_empty() {
        // An RC without a selector selects its template's labels.
        old_selector = template_labels.clone();
    }
    if old_selector.is_empty() {
        return Err(NotRollable(format!(
            "{} has neither a selector nor template labels",
            kind_name(&old_name)
        )));
    }
    let replicas = old
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1) as i32;
    let version = p.version.clone();
    let adopt = match old_selector.get(version_label) {
        Some(v) if *v == version => {
            return Err(NotRollable(format!(
                "{} already runs {version_label}={version}: nothing to roll (set a different version)",
                kind_name(&old_name)
            )));
        }
        Some(_) => None,
        None => {
            let from_tag = Reference::parse(&p.old_image)
                .ok()
                .and_then(|r| r.version_source().map(str::to_string))
                .and_then(|t| crate::config::sanitise_label_value(&t));
            let candidate = template_labels
                .get(version_label)
                .cloned()
                .filter(|v| *v != version)
                .or(from_tag.filter(|v| *v != version))
                .unwrap_or_else(|| template_hash(&p.previous_template));
            Some((version_label.to_string(), candidate))
        }
    };
    let annotations = labels_at(old, "/metadata/annotations");
    let base = match annotations.get(BASE_NAME) {
        Some(b) => b.clone(),
        None => old_selector
            .get(version_label)
            .and_then(|v| old_name.strip_suffix(&format!("-{}", name_part(v))))
            .filter(|b| !b.is_empty())
            .unwrap_or(&old_name)
            .to_string(),
    };
    let new_name = format!("{base}-{}", name_part(&version));
    if new_name == old_name {
        return Err(NotRollable(format!(
            "{} already is the RC of version {version}: nothing to roll",
            kind_name(&old_name)
        )));
    }
    if new_name.len() > 253 {
        return Err(NotRollable(format!(
            "the new RC name \"{new_name}\" is too long: set a shorter version"
        )));
    }
    let mut selector = old_selector.clone();
    if let Some((k, _)) = &adopt {
        selector.remove(k);
    }
    selector.insert(version_label.to_string(), version.clone());
    let mut new_annotations: Map<String, Value> = Map::new();
    for k in [dep::CHANGE_CAUSE, dep::PREVIOUS_IMAGE] {
        if let Some(v) = patched.pointer(&format!(
            "/metadata/annotations/{}",
            dep::pointer_segment(k)
        )) {
            new_annotations.insert(k.into(), v.clone());
        }
    }
    new_annotations.insert(ROLLING_UPDATE_FROM.into(), json!(old_name));
    new_annotations.insert(DESIRED_REPLICAS.into(), json!(replicas.to_string()));
    new_annotations.insert(BASE_NAME.into(), json!(base));
    let mut template = patched
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    // The template's labels must carry every selector label.
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for (k, v) in &selector {
            labels.insert(k.clone(), json!(v));
        }
    }
    let mut spec = json!({
        "replicas": 0,
        "selector": selector,
        "template": template,
    });
    if let Some(m) = old.pointer("/spec/minReadySeconds") {
        spec["minReadySeconds"] = m.clone();
    }
    let mut metadata = json!({"name": new_name, "annotations": new_annotations});
    if let Some(ns) = old.pointer("/metadata/namespace") {
        metadata["namespace"] = ns.clone();
    }
    if let Some(l) = old.pointer("/metadata/labels") {
        metadata["labels"] = l.clone();
    }
    let new_rc = json!({
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": metadata,
        "spec": spec,
    });
    Ok(RcPlan {
        old_name,
        new_name,
        base,
        container: p.container,
        old_image: p.old_image,
        new_image: p.new_image,
        version,
        replicas,
        old_selector,
        adopt,
        new_rc,
        previous_template: p.previous_template,
    })
}

/// The JSON Patch that marks the old RC as being rolled (and, when needed,
/// adds the distinguishing label to its template; the selector follows
/// after the pods are labelled: see [`adopt_selector_patch`]).
pub fn mark_old_patch(old: &Value, plan: &RcPlan) -> Value {
    let mut ops = vec![json!({"op": "test", "path": "/metadata/resourceVersion",
        "value": old.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)})];
    let marks = [
        (ROLLING_UPDATE_TO, plan.new_name.clone()),
        (ORIGINAL_REPLICAS, plan.replicas.to_string()),
    ];
    if old
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some()
    {
        for (k, v) in marks {
            ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", dep::pointer_segment(k)), "value": v}));
        }
    } else {
        let m: Map<String, Value> = marks
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": m}));
    }
    if let Some((k, v)) = &plan.adopt {
        if old
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
            .is_some()
        {
            ops.push(json!({"op": "add", "path": format!("/spec/template/metadata/labels/{}", dep::pointer_segment(k)), "value": v}));
        } else {
            ops.push(
                json!({"op": "add", "path": "/spec/template/metadata/labels", "value": {k: v}}),
            );
        }
    }
    Value::Array(ops)
}

/// The patch adding the distinguishing label to the old RC's selector
/// (sent after its pods carry the label, so none is orphaned or doubled).
pub fn adopt_selector_patch(plan: &RcPlan) -> Option<Value> {
    let (k, v) = plan.adopt.as_ref()?;
    let mut selector = plan.old_selector.clone();
    selector.insert(k.clone(), v.clone());
    Some(json!([{"op": "add", "path": "/spec/selector", "value": selector}]))
}

/// What a previous, interrupted run left on the old RC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// Nothing: a fresh update.
    No,
    /// The same update was under way: continue it from where it stopped.
    Resume { new_name: String },
    /// Another update was under way: undo it first (old RC back to
    /// `original_replicas`, its new RC deleted).
    RollBackFirst {
        new_name: String,
        original_replicas: i32,
    },
}

/// Decide from the old RC's bookkeeping annotations (and the RC it names,
/// when it exists) whether to resume or undo an interrupted update.
pub fn interrupted(old: &Value, named_new: Option<&Value>, plan: &RcPlan) -> Interrupted {
    let annotations = labels_at(old, "/metadata/annotations");
    let Some(to) = annotations.get(ROLLING_UPDATE_TO) else {
        return Interrupted::No;
    };
    let original_replicas = annotations
        .get(ORIGINAL_REPLICAS)
        .and_then(|r| r.parse().ok())
        .unwrap_or(plan.replicas);
    let same = *to == plan.new_name
        && named_new.is_some_and(|n| {
            n.pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["name"] == plan.container.as_str()
                            && c["image"] == plan.new_image.as_str()
                    })
                })
        });
    if same {
        Interrupted::Resume {
            new_name: to.clone(),
        }
    } else {
        Interrupted::RollBackFirst {
            new_name: to.clone(),
            original_replicas,
        }
    }
}

/// What the two RCs and their pods look like now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub old_spec: i32,
    pub new_spec: i32,
    /// Pods of the old RC not being deleted.
    pub old_live: i32,
    pub old_ready: i32,
    pub new_live: i32,
    pub new_ready: i32,
}

/// The next move of the rolling update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Scale the new RC to this many replicas.
    ScaleNew(i32),
    /// Scale the old RC to this many replicas.
    ScaleOld(i32),
    Wait(String),
    /// The new RC has every replica ready and the old one has none.
    Done,
}

/// kubectl's rolling-update arithmetic, on ready pods: scale the new RC up
/// to at most `desired + surge` pods in all, scale the old one down only by
/// as many as keep `desired - unavailable` pods ready — whichever pods the
/// RC controller picks to delete.
pub fn next_step(c: &Counts, surge: i32, unavailable: i32) -> Step {
    let min_available = (c.desired - unavailable).max(0);
    if c.new_spec < c.desired && c.old_spec + c.new_spec < c.desired + surge {
        return Step::ScaleNew(c.desired.min(c.desired + surge - c.old_spec));
    }
    if c.old_spec > 0 {
        if c.old_live > c.old_spec {
            return Step::Wait(format!(
                "{} old pod(s) to terminate",
                c.old_live - c.old_spec
            ));
        }
        let can_remove = c.old_ready + c.new_ready - min_available;
        if can_remove > 0 {
            return Step::ScaleOld((c.old_spec - can_remove).max(0));
        }
        return Step::Wait(format!(
            "{} more new pods to be ready",
            (c.new_spec - c.new_ready).max(0)
        ));
    }
    if c.new_ready < c.desired {
        return Step::Wait(format!(
            "{} more new pods to be ready",
            c.desired - c.new_ready
        ));
    }
    if c.old_live > 0 {
        return Step::Wait(format!("{} old pod(s) to terminate", c.old_live));
    }
    Step::Done
}

/// An RC is rolled out when its controller observed its spec and every
/// replica is ready: what is still awaited, or None.
pub fn still_waiting_for(rc: &Value) -> Option<String> {
    let n = |p: &str| rc.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let desired = rc
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if n("/status/observedGeneration") < n("/metadata/generation") {
        return Some("the replication controller to observe the change".into());
    }
    if n("/status/replicas") != desired {
        return Some(format!("{} of {desired} replicas", n("/status/replicas")));
    }
    let ready = n("/status/readyReplicas");
    (ready < desired).then(|| format!("{} more to become ready", desired - ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi_container_rc() -> Value {
        json!({
            "kind": "ReplicationController", "apiVersion": "v1",
            "metadata": {"name": "api-rc", "namespace": "default", "labels": {"name": "api-rc"}, "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"name": "api-pods"},
                "template": {"metadata": {"labels": {"name": "api-pods"}},
                    "spec": {"containers": [
                        {"name": "node-api-container", "image": "asia.gcr.io/xxxxx/node-api:1.0.0"},
                        {"name": "fluentd-container", "image": "asia.gcr.io/xxxxx/fluentd:1.0.0"}]}}}
        })
    }

    fn plan_for(old: &Value, tag: &str) -> RcPlan {
        plan(
            old,
            &crate::workload::deployment::Ask {
                container: Some("node-api-container"),
                change: &crate::image::ImageChange::Tag(tag.into()),
                version: None,
                version_label: "version",
                origin: "ci",
                now: "now",
            },
        )
        .unwrap()
    }

    #[test]
    fn version_selectors_become_disjoint() {
        let old = multi_container_rc();
        let p = plan_for(&old, "1.0.1");
        assert_eq!(p.new_name, "api-rc-1.0.1");
        assert_eq!(p.adopt, Some(("version".into(), "1.0.0".into())));
        assert_eq!(
            p.new_rc["spec"]["selector"],
            json!({"name": "api-pods", "version": "1.0.1"})
        );
        assert_eq!(p.new_rc["spec"]["replicas"], 0);
        let labels = &p.new_rc["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["version"], "1.0.1");
        assert_eq!(labels["name"], "api-pods");
        let cs = &p.new_rc["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "asia.gcr.io/xxxxx/node-api:1.0.1");
        assert_eq!(cs[1]["image"], "asia.gcr.io/xxxxx/fluentd:1.0.0");
        // kubectl's rule: some old selector key has a different value in the new one.
        let mut old_sel = p.old_selector.clone();
        old_sel.insert("version".into(), "1.0.0".into());
        assert!(old_sel.iter().any(|(k, v)| {
            p.new_rc["spec"]["selector"][k]
                .as_str()
                .is_some_and(|n| n != v)
        }));
        assert_eq!(p.shared_selector("version"), "name=api-pods");

        let mut marked = old.clone();
        let patch: json_patch::Patch = serde_json::from_value(mark_old_patch(&old, &p)).unwrap();
        json_patch::patch(&mut marked, &patch).unwrap();
        assert_eq!(
            marked["metadata"]["annotations"][ROLLING_UPDATE_TO],
            "api-rc-1.0.1"
        );
        assert_eq!(
            marked["spec"]["template"]["metadata"]["labels"]["version"],
            "1.0.0"
        );
        let sel: json_patch::Patch =
            serde_json::from_value(adopt_selector_patch(&p).unwrap()).unwrap();
        json_patch::patch(&mut marked, &sel).unwrap();
        assert_eq!(
            marked["spec"]["selector"],
            json!({"name": "api-pods", "version": "1.0.0"})
        );

        // The next update starts from the versioned RC: base name kept.
        let mut next = p.new_rc.clone();
        next["spec"]["replicas"] = json!(3);
        let p2 = plan_for(&next, "1.0.2");
        assert_eq!(p2.new_name, "api-rc-1.0.2");
        assert_eq!(p2.adopt, None);
        assert!(
            plan(
                &next,
                &crate::workload::deployment::Ask {
                    container: Some("node-api-container"),
                    change: &crate::image::ImageChange::Tag("1.0.1".into()),
                    version: None,
                    version_label: "version",
                    origin: "ci",
                    now: "now"
                }
            )
            .is_err()
        );
    }

    #[test]
    fn interrupted_updates_resume_or_roll_back() {
        let old = multi_container_rc();
        let p = plan_for(&old, "1.0.1");
        assert_eq!(interrupted(&old, None, &p), Interrupted::No);
        let mut marked = old.clone();
        marked["metadata"]["annotations"] =
            json!({ROLLING_UPDATE_TO: "api-rc-1.0.1", ORIGINAL_REPLICAS: "3"});
        assert_eq!(
            interrupted(&marked, Some(&p.new_rc), &p),
            Interrupted::Resume {
                new_name: "api-rc-1.0.1".into()
            }
        );
        let other = plan_for(&old, "1.0.2");
        assert_eq!(
            interrupted(&marked, Some(&p.new_rc), &other),
            Interrupted::RollBackFirst {
                new_name: "api-rc-1.0.1".into(),
                original_replicas: 3
            }
        );
    }

    /// Simulate the update with instant pods: ready never drops below
    /// desired - unavailable and pods never exceed desired + surge.
    #[test]
    fn steps_keep_availability() {
        for (surge, unavailable) in [(1, 0), (2, 0), (0, 1), (1, 1), (3, 0)] {
            let mut c = Counts {
                desired: 3,
                old_spec: 3,
                old_live: 3,
                old_ready: 3,
                ..Default::default()
            };
            let mut steps = 0;
            loop {
                steps += 1;
                assert!(steps < 50);
                match next_step(&c, surge, unavailable) {
                    Step::ScaleNew(n) => {
                        c.new_spec = n;
                        c.new_live = n;
                        assert!(c.old_live + c.new_live <= 3 + surge);
                    }
                    Step::ScaleOld(n) => {
                        c.old_spec = n;
                        c.old_live = n;
                        c.old_ready = n;
                        assert!(c.old_ready + c.new_ready >= 3 - unavailable, "{c:?}");
                    }
                    Step::Wait(_) => c.new_ready = c.new_live,
                    Step::Done => break,
                }
            }
            assert_eq!((c.new_ready, c.old_live), (3, 0));
        }
    }
}
