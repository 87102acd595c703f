//! Pure helpers of the Deployment controller, after upstream
//! `pkg/controller/deployment/util/deployment_util.go` (the general object
//! helpers are in `controllers::meta`).
//! Objects are JSON values; nothing here does I/O.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::controllers::meta::{annotation, by_creation, scaled_value};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";

/// Upstream `maxRevHistoryLengthInChars`.
const MAX_REV_HISTORY_CHARS: usize = 2000;

// ---------------------------------------------------------------- templates and labels

/// Upstream `EqualIgnoreHash`: two pod templates equal once the
/// `pod-template-hash` label is removed from both.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    strip_hash(a) == strip_hash(b)
}

fn strip_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
        if labels.is_empty()
            && let Some(m) = t["metadata"].as_object_mut()
        {
            m.remove("labels");
        }
    }
    t
}

/// Upstream `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded
/// down); when both resolve to 0, maxUnavailable becomes 1.
pub fn resolve_fenceposts(max_surge: &Value, max_unavailable: &Value, desired: i32) -> (i32, i32) {
    let or_zero = |v: &Value| if v.is_null() { json!(0) } else { v.clone() };
    let surge = scaled_value(&or_zero(max_surge), desired, true).unwrap_or(0);
    let unavailable = scaled_value(&or_zero(max_unavailable), desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// The parts of a Deployment's spec the controller acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub replicas: i32,
    pub recreate: bool,
    pub max_surge: Value,
    pub max_unavailable: Value,
    pub min_ready_seconds: i64,
    pub revision_history_limit: Option<i32>,
    pub paused: bool,
    pub progress_deadline_seconds: Option<i64>,
}

impl Spec {
    pub fn of(d: &Value) -> Self {
        let s = &d["spec"];
        let ru = &s["strategy"]["rollingUpdate"];
        Self {
            replicas: s["replicas"].as_i64().unwrap_or(1) as i32,
            recreate: s["strategy"]["type"].as_str() == Some("Recreate"),
            max_surge: ru["maxSurge"].clone(),
            max_unavailable: ru["maxUnavailable"].clone(),
            min_ready_seconds: s["minReadySeconds"].as_i64().unwrap_or(0),
            revision_history_limit: s["revisionHistoryLimit"].as_i64().map(|v| v as i32),
            paused: s["paused"].as_bool().unwrap_or(false),
            progress_deadline_seconds: s["progressDeadlineSeconds"]
                .as_i64()
                .filter(|v| *v != i64::from(i32::MAX)),
        }
    }

    /// Upstream `MaxSurge`: 0 for Recreate.
    pub fn max_surge(&self) -> i32 {
        if self.recreate {
            return 0;
        }
        resolve_fenceposts(&self.max_surge, &self.max_unavailable, self.replicas).0
    }

    /// Upstream `MaxUnavailable`: 0 for Recreate or 0 replicas, at most `replicas`.
    pub fn max_unavailable(&self) -> i32 {
        if self.recreate || self.replicas == 0 {
            return 0;
        }
        resolve_fenceposts(&self.max_surge, &self.max_unavailable, self.replicas)
            .1
            .min(self.replicas)
    }

    pub fn has_progress_deadline(&self) -> bool {
        self.progress_deadline_seconds.is_some()
    }
}

// ---------------------------------------------------------------- ReplicaSet accessors

pub(super) fn int(v: &Value) -> i32 {
    v.as_i64().unwrap_or(0) as i32
}

/// `spec.replicas` (defaults to 1 as the API does).
pub fn rs_replicas(rs: &Value) -> i32 {
    rs["spec"]["replicas"].as_i64().unwrap_or(1) as i32
}

pub fn rs_status_replicas(rs: &Value) -> i32 {
    int(&rs["status"]["replicas"])
}

pub fn rs_available(rs: &Value) -> i32 {
    int(&rs["status"]["availableReplicas"])
}

pub fn rs_ready(rs: &Value) -> i32 {
    int(&rs["status"]["readyReplicas"])
}

pub fn rs_terminating(rs: &Value) -> i32 {
    int(&rs["status"]["terminatingReplicas"])
}

/// The revision annotation as a number (0 when absent or malformed).
pub fn revision(obj: &Value) -> i64 {
    annotation(obj, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Upstream `ReplicaSetsByRevision` (ties by creation).
pub fn by_revision(a: &Value, b: &Value) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

/// Upstream `ReplicaSetsBySizeNewer`: larger first, then newer first.
pub fn by_size_newer(a: &Value, b: &Value) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Upstream `ReplicaSetsBySizeOlder`: larger first, then older first.
pub fn by_size_older(a: &Value, b: &Value) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Upstream `FindNewReplicaSet`: the oldest RS whose template equals the
/// Deployment's, ignoring `pod-template-hash`.
pub fn find_new_replica_set<'a, T: AsRef<Value>>(d: &Value, rs_list: &'a [T]) -> Option<&'a T> {
    let mut sorted: Vec<&T> = rs_list.iter().collect();
    sorted.sort_by(|a, b| by_creation(a.as_ref(), b.as_ref()));
    sorted
        .into_iter()
        .find(|rs| equal_ignore_hash(&rs.as_ref()["spec"]["template"], &d["spec"]["template"]))
}

// ---------------------------------------------------------------- annotations

/// Upstream `copyDeploymentAnnotationsToReplicaSet`.
fn copy_deployment_annotations(d: &Value, rs_ann: &mut Map<String, Value>) -> bool {
    let skip = [
        LAST_APPLIED,
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        ROLLBACK_TO,
    ];
    let mut changed = false;
    for (k, v) in d["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if skip.contains(&k.as_str()) || rs_ann.get(k) == Some(v) {
            continue;
        }
        rs_ann.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

fn annotations_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    match obj["metadata"]["annotations"].as_object_mut() {
        Some(m) => m,
        None => unreachable!("annotations were just made an object"),
    }
}

/// Upstream `SetNewReplicaSetAnnotations`: copy the Deployment's
/// annotations, raise the revision (keeping the old one in
/// `revision-history` when an old RS is reused) and, for an RS about to be
/// created, the replica annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(
    d: &Value,
    rs: &mut Value,
    new_revision: i64,
    exists: bool,
    spec: &Spec,
) -> bool {
    let ann = annotations_mut(rs);
    let mut changed = copy_deployment_annotations(d, ann);
    let old = ann
        .get(REVISION)
        .and_then(Value::as_str)
        .map(str::to_string);
    let old_int = match &old {
        None => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(v) => v,
            Err(_) if s.is_empty() => 0,
            Err(_) => return false,
        },
    };
    if old_int < new_revision {
        ann.insert(REVISION.into(), json!(new_revision.to_string()));
        changed = true;
        if let Some(old) = old {
            let history = ann
                .get(REVISION_HISTORY)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(h) = append_revision_history(&history, &old) {
                ann.insert(REVISION_HISTORY.into(), json!(h));
            }
        }
    }
    if !exists {
        changed |= set_replicas_annotations(rs, spec.replicas, spec.replicas + spec.max_surge());
    }
    changed
}

/// The revision-history list with `old` appended, oldest entries dropped to
/// stay within 2000 characters; None when it cannot fit.
fn append_revision_history(history: &str, old: &str) -> Option<String> {
    if history.is_empty() {
        return Some(old.to_string());
    }
    let revs: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old.len() + 1;
    let mut start = 0;
    while total > MAX_REV_HISTORY_CHARS && start < revs.len() {
        total -= revs[start].len() + 1;
        start += 1;
    }
    if total > MAX_REV_HISTORY_CHARS {
        return None;
    }
    let mut kept: Vec<&str> = revs[start..].to_vec();
    kept.push(old);
    Some(kept.join(","))
}

/// Upstream `SetReplicasAnnotations` (desired-replicas, max-replicas).
pub fn set_replicas_annotations(rs: &mut Value, desired: i32, max: i32) -> bool {
    let ann = annotations_mut(rs);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = json!(v.to_string());
        if ann.get(k) != Some(&v) {
            ann.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

/// Upstream `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &Value, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Upstream `GetProportion`/`getReplicaSetFraction`: how many replicas an
/// active RS gains (or loses) when the Deployment is resized mid-rollout.
pub fn proportion(rs: &Value, spec: &Spec, status_replicas: i32, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, spec, status_replicas);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn replica_set_fraction(rs: &Value, spec: &Spec, status_replicas: i32) -> i32 {
    let size = rs_replicas(rs);
    if spec.replicas == 0 {
        return -size;
    }
    let max_now = spec.replicas + spec.max_surge();
    let before = annotation(rs, MAX_REPLICAS)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v != 0)
        .unwrap_or(status_replicas);
    if before == 0 {
        return -size;
    }
    let scaled = f64::from(size) * f64::from(max_now) / f64::from(before);
    scaled.round() as i32 - size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        assert_eq!(resolve_fenceposts(&json!("25%"), &json!("25%"), 3), (1, 0));
        assert_eq!(resolve_fenceposts(&json!("25%"), &json!("25%"), 10), (3, 2));
        assert_eq!(
            resolve_fenceposts(&json!(0), &json!("10%"), 5),
            (0, 1),
            "both zero -> unavailable 1"
        );
        assert_eq!(resolve_fenceposts(&json!(2), &json!(1), 5), (2, 1));
        assert_eq!(scaled_value(&json!("50"), 4, true), None);
        let mut spec = Spec::of(
            &json!({"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}}}}),
        );
        assert_eq!(spec.max_unavailable(), 3);
        spec.recreate = true;
        assert_eq!((spec.max_surge(), spec.max_unavailable()), (0, 0));
    }

    #[test]
    fn equal_ignoring_hash_label() {
        let a = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {"x": 1}});
        let b = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"x": 1}});
        assert!(equal_ignore_hash(&a, &b));
        let c = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"x": 2}});
        assert!(!equal_ignore_hash(&a, &c));
    }

    #[test]
    fn reusing_an_old_rs_records_revision_history() {
        let spec = Spec::of(
            &json!({"spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}),
        );
        let d = json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "x", REVISION: "2",
            "kubectl.kubernetes.io/last-applied-configuration": "{}"}}});
        let mut rs = json!({"metadata": {"annotations": {REVISION: "1"}}});
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true, &spec));
        let ann = &rs["metadata"]["annotations"];
        assert_eq!(ann[REVISION], "3");
        assert_eq!(ann[REVISION_HISTORY], "1");
        assert_eq!(ann["kubernetes.io/change-cause"], "x");
        assert!(
            ann.get("kubectl.kubernetes.io/last-applied-configuration")
                .is_none()
        );
        assert!(
            !set_new_rs_annotations(&d, &mut rs, 3, true, &spec),
            "idempotent"
        );
        let mut rs2 = rs.clone();
        set_new_rs_annotations(&d, &mut rs2, 5, true, &spec);
        assert_eq!(rs2["metadata"]["annotations"][REVISION_HISTORY], "1,3");
        let mut fresh = json!({"metadata": {}});
        set_new_rs_annotations(&d, &mut fresh, 1, false, &spec);
        assert_eq!(fresh["metadata"]["annotations"][DESIRED_REPLICAS], "3");
        assert_eq!(fresh["metadata"]["annotations"][MAX_REPLICAS], "4");
        assert_eq!(
            append_revision_history(&"1,".repeat(1000), "9").map(|h| h.len() <= 2000),
            Some(true)
        );
    }

    #[test]
    fn proportional_scaling_fraction() {
        let spec = Spec::of(
            &json!({"spec": {"replicas": 20, "strategy": {"rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}}}),
        );
        // RS of 5 sized for a max of 13: 5 * 23 / 13 = 8.8 -> 9, i.e. +4.
        let rs =
            json!({"metadata": {"annotations": {MAX_REPLICAS: "13"}}, "spec": {"replicas": 5}});
        assert_eq!(proportion(&rs, &spec, 13, 10, 0), 4);
        assert_eq!(
            proportion(&rs, &spec, 13, 10, 8),
            2,
            "capped by what is left"
        );
    }
}
