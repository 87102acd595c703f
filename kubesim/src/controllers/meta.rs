//! General object helpers every controller uses, after upstream
//! `pkg/controller/controller_utils.go` and apimachinery: names, uids and
//! deletion, owner references, label selectors, template hashes, int-or-
//! percent values, and the status write. Objects are JSON values.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::error::ApiResult;
use crate::resources::res;
use crate::sim::Sim;

/// 32-bit FNV-1a (Go's `hash/fnv.New32a`).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// apimachinery `rand.SafeEncodeString`: map every byte onto consonants and
/// digits so the result never spells words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// JSON with object keys sorted, whatever serde_json's map order is.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Upstream `controller.ComputeHash`: FNV-1a of the pod template (here its
/// canonical JSON instead of Go's spew dump), plus the collision count as
/// 8 little-endian bytes, printed in decimal and safe-encoded.
pub fn compute_hash(template: &Value, collision_count: Option<i32>) -> String {
    let mut s = String::new();
    write_canonical(template, &mut s);
    let mut bytes = s.into_bytes();
    if let Some(c) = collision_count {
        let mut cc = [0u8; 8];
        cc[..4].copy_from_slice(&(c as u32).to_le_bytes());
        bytes.extend_from_slice(&cc);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Whether a `metav1.LabelSelector` matches a label map (matchLabels and
/// matchExpressions In/NotIn/Exists/DoesNotExist). An empty selector matches everything.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let labels_ok = selector["matchLabels"].as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| label(k).is_some() && label(k) == v.as_str())
    });
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap_or("") {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

/// Whether a selector selects everything (`{}`), which a Deployment refuses.
pub fn selector_is_empty(selector: &Value) -> bool {
    let empty = |k: &str| match &selector[k] {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    empty("matchLabels") && empty("matchExpressions")
}

/// A copy of `labels` (an object or null) with one more label.
pub fn with_label(labels: &Value, key: &str, value: &str) -> Value {
    let mut m = labels.as_object().cloned().unwrap_or_default();
    m.insert(key.to_string(), json!(value));
    Value::Object(m)
}

/// apimachinery `GetScaledValueFromIntOrPercent`: an int, or "N%" of `total`
/// rounded up or down. None when the string is not a percentage.
pub fn scaled_value(v: &Value, total: i32, round_up: bool) -> Option<i32> {
    if let Some(i) = v.as_i64() {
        return Some(i as i32);
    }
    let pct: f64 = v.as_str()?.strip_suffix('%')?.parse::<i64>().ok()? as f64;
    let x = pct * f64::from(total) / 100.0;
    Some(if round_up { x.ceil() } else { x.floor() } as i32)
}

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

/// The objects of `resource` in every namespace; None when there are none
/// (the controller of that resource has nothing to reconcile).
pub fn listed(sim: &Sim, resource: &str) -> Option<Vec<Arc<Value>>> {
    let (objects, _) = sim.store.list(res(resource), None);
    (!objects.is_empty()).then_some(objects)
}

pub fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// Upstream `ReplicaSetsByCreationTimestamp` (timestamps are fixed-width
/// RFC 3339, so string order is time order; ties by name).
pub fn by_creation(a: &Value, b: &Value) -> Ordering {
    let ts = |o: &Value| {
        o["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    ts(a).cmp(&ts(b)).then_with(|| name(a).cmp(name(b)))
}

/// `metadata.ownerReferences` entry for a controller owner.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
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
        None => obj["metadata"]["ownerReferences"] = json!([owner_ref.clone()]),
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
/// A status built whole keeps the conditions the object already has (the
/// DaemonSet and StatefulSet controllers set none of their own).
pub fn keep_conditions(status: &mut Map<String, Value>, obj: &Value) {
    if let Some(c) = obj["status"]["conditions"]
        .as_array()
        .filter(|c| !c.is_empty())
    {
        status.insert("conditions".into(), Value::Array(c.clone()));
    }
}

pub fn write_status(sim: &Sim, resource: &str, obj: &Value, status: &Value) -> ApiResult<()> {
    if obj["status"] == *status {
        return Ok(());
    }
    let my_uid = uid(obj);
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    sim.store.modify(res(resource), ns, name(obj), |cur| {
        if uid(cur) != my_uid {
            return Ok(false);
        }
        cur["status"] = status.clone();
        Ok(true)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_and_safe_encode_match_go() {
        // Go: fnv.New32a() of "" is the offset basis; of "a" is 0xe40c292c.
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        // '0'..'9' are bytes 48..57: indexes 21..=26 then 0..=3.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "a"}]}});
        let h = compute_hash(&t, None);
        assert!(h.len() >= 8 && h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(h, compute_hash(&t, None), "stable");
        assert_ne!(
            h,
            compute_hash(&t, Some(1)),
            "collision count changes the hash"
        );
    }

    #[test]
    fn canonical_form_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": null}}"#)
                .unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a": {"x": null, "y": [1, {"p": 3, "q": 2}]}, "b": 1}"#)
                .unwrap();
        assert_eq!(compute_hash(&a, None), compute_hash(&b, None));
    }

    #[test]
    fn selectors() {
        let labels = json!({"app": "web", "tier": "fe"});
        assert!(selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            &labels
        ));
        let sel = json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "x", "operator": "DoesNotExist"},
            {"key": "app", "operator": "NotIn", "values": ["db"]}]});
        assert!(selector_matches(&sel, &labels));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "x", "operator": "Exists"}]}),
            &labels
        ));
        assert!(selector_is_empty(&json!({})));
        assert!(!selector_is_empty(&json!({"matchLabels": {"a": "b"}})));
    }
}
